"""Campaigns service: fleet communication (seed 000). `uvicorn services.campaigns.app:app`."""

from pathlib import Path

from core.web import create_app
from services.campaigns import api, links, views
from services.campaigns.views import driver_space

app = create_app(
    name="campaigns",
    title="Campagnes",
    service_dir=Path(__file__).parent,
    ui_routers=(views.router,),
    api_routers=(api.router,),
    public_routers=(links.router, driver_space.router),
)
