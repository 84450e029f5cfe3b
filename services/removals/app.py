"""Déposes de boîtiers service (seed 004). `uvicorn services.removals.app:app`."""

from pathlib import Path

from core.web import create_app
from services.removals import api, links, views

app = create_app(
    name="removals",
    title="Déposes de boîtiers",
    service_dir=Path(__file__).parent,
    ui_routers=(views.router,),
    api_routers=(api.router,),
    public_routers=(links.router,),
)
