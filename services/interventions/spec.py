"""What the interventions service brings to the platform (assembled by `wiring/`)."""

from core.platform import ServiceSpec

SPEC = ServiceSpec(name="interventions", title="Interventions", dev_port=8004)
