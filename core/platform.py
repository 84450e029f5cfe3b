"""What a service declares to the platform (`services/<name>/spec.py`): its workflows, its activities, its demo
data and logins. `core` only defines the shape; the wiring module (`wiring/`) lists the services and assembles the
worker and the dev stack from their declarations, so that adding a service never means editing `core/`."""

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from sqlalchemy.orm import Session
from temporalio.client import Client

from core.settings import Settings

# The activities of a service, built with their dependencies (methods of classes, as samples-python does).
Activities = Callable[[Settings, Client], Sequence[Callable[..., object]]]
# (e-mail, full name, organisation slug, role) of a demo login, shown by `make run`.
DemoLogin = tuple[str, str, str, str]


@dataclass(frozen=True)
class ServiceSpec:
    name: str  # also the package: services.<name>.app:app
    title: str
    dev_port: int
    workflows: Sequence[type] = ()
    activities: Activities | None = None  # on the main task queue
    models: str | None = None  # the module that declares its tables (Alembic, tests)
    demo: Callable[[Session], None] | None = None
    demo_logins: Sequence[DemoLogin] = ()
    demo_api_keys: Mapping[str, str] = field(default_factory=dict)  # organisation slug → key
