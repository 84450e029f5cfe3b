"""What the notices service brings to the platform (assembled by `wiring/`)."""

from core.platform import ServiceSpec
from services.notices.demo import API_KEYS, USERS, load_notices_demo

SPEC = ServiceSpec(
    name="notices", title="Avis d'échéance", dev_port=8002, models="services.notices.models",
    demo=load_notices_demo, demo_logins=USERS, demo_api_keys=API_KEYS,
)
