"""Interventions service (seed 003). `uvicorn services.interventions.app:app`."""

from pathlib import Path

from core.web import create_app
from services.interventions import views

app = create_app(
    name="interventions", title="Interventions", service_dir=Path(__file__).parent, ui_routers=(views.router,)
)
