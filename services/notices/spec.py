"""What the notices service brings to the platform (assembled by `wiring/`)."""

from core.platform import ServiceSpec

SPEC = ServiceSpec(name="notices", title="Avis d'échéance", dev_port=8002)
