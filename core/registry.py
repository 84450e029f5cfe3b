"""The one place that lists every service's models, workflows and activities."""

import importlib

SERVICES = ("campaigns", "notices", "removals", "interventions")


def import_all_models() -> None:
    """Import every service's models so Base.metadata knows all tables (Alembic, tests)."""
    importlib.import_module("core.models")
    for name in SERVICES:
        try:
            importlib.import_module(f"services.{name}.models")
        except ModuleNotFoundError as exc:
            if exc.name != f"services.{name}.models":
                raise
