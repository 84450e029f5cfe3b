"""Avis d'échéance service (seed 001). `uvicorn services.notices.app:app`."""

from pathlib import Path

from core.web import create_app
from services.notices import api, views

app = create_app(
    name="notices",
    title="Avis d'échéance",
    service_dir=Path(__file__).parent,
    ui_routers=(views.router,),
    api_routers=(api.router,),
)
