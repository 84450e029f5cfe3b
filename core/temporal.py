"""Temporal client factory and the project's one shared set of search attributes.

SQL visibility allows at most 10 Keyword attributes in total, so every domain shares these.
"""

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import structlog
from pydantic_core import to_jsonable_python
from temporalio import activity
from temporalio.api.enums.v1 import IndexedValueType
from temporalio.api.operatorservice.v1 import AddSearchAttributesRequest, ListSearchAttributesRequest
from temporalio.client import Client
from temporalio.common import (
    SearchAttributeKey,
    SearchAttributePair,
    TypedSearchAttributes,
    WorkflowIDConflictPolicy,
    WorkflowIDReusePolicy,
)
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.service import RPCError, RPCStatusCode
from temporalio.worker import ActivityInboundInterceptor, ExecuteActivityInput, Interceptor

from core.settings import Settings, get_settings

SA_ORGANISATION = SearchAttributeKey.for_keyword("RelaisOrganisation")  # organisation slug
SA_DOMAIN = SearchAttributeKey.for_keyword("RelaisDomain")  # campaigns | notices | removals | interventions
SA_CAMPAIGN = SearchAttributeKey.for_keyword("RelaisCampaign")  # campaign / request / run number
SA_PERSON = SearchAttributeKey.for_keyword("RelaisPerson")  # driver matricule, client number, e-mail
SA_VEHICLE = SearchAttributeKey.for_keyword("RelaisVehicle")  # immatriculation or VIN
SA_DOCUMENT = SearchAttributeKey.for_keyword("RelaisDocument")  # fine number, notice number...
SA_FAMILY = SearchAttributeKey.for_keyword("RelaisFamily")  # workflow family / kind of process
SA_STATUS = SearchAttributeKey.for_keyword("RelaisStatus")  # business status, kept up to date

# The platform's own workflow (not a service's): send one outbox row (`workflows/single_mail.py`, wired by `wiring/`).
SINGLE_MAIL = "SingleMailWorkflow"

SEARCH_ATTRIBUTES: tuple[SearchAttributeKey[str], ...] = (
    SA_ORGANISATION, SA_DOMAIN, SA_CAMPAIGN, SA_PERSON, SA_VEHICLE, SA_DOCUMENT, SA_FAMILY, SA_STATUS,
)


def search_attributes(**values: str | None) -> TypedSearchAttributes:
    """`search_attributes(RelaisOrganisation="acme", RelaisDomain="campaigns")`, skipping Nones."""
    by_name = {key.name: key for key in SEARCH_ATTRIBUTES}
    pairs = [SearchAttributePair(by_name[name], value) for name, value in values.items() if value is not None]
    return TypedSearchAttributes(pairs)


@dataclass(frozen=True)
class StartSpec:
    """How to start one workflow, JSON-safe so that it can wait in the database (`core.signals`) before it is used.

    Every start in the project goes through `start_workflow` below with one of these: deterministic id, a finished
    workflow stays finished (REJECT_DUPLICATE), a running one is found instead of started twice (USE_EXISTING)."""

    workflow_id: str
    workflow: str  # the workflow type's name
    input: Any  # JSON-safe (pydantic's `to_jsonable_python`): the worker decodes it into the run method's type
    task_queue: str
    summary: str  # shown in the Temporal Web UI's list
    search: dict[str, str] = field(default_factory=dict)  # search attribute name → value (`search_attributes`)


def start_spec(workflow_id: str, workflow: str, arg: object, *, task_queue: str, summary: str,
               **search: str | None) -> StartSpec:
    """`start_spec("campaign-4", "EmailCampaignWorkflow", inp, task_queue=..., summary=..., RelaisCampaign="4")`."""
    return StartSpec(workflow_id, workflow, to_jsonable_python(arg), task_queue, summary[:400],
                     {name: value for name, value in search.items() if value is not None})


async def start_workflow(client: Client, spec: StartSpec, *, signal: str | None = None, signal_arg: Any = None) -> None:
    """Start the workflow of `spec` unless it exists; with `signal`, signal-with-start (a running one gets the signal).
    Raises WorkflowAlreadyStartedError when the workflow has already run and closed."""
    extra: dict[str, Any] = {"start_signal": signal, "start_signal_args": [signal_arg]} if signal else {}
    await client.start_workflow(
        spec.workflow, spec.input, id=spec.workflow_id, task_queue=spec.task_queue,
        id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
        id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
        search_attributes=search_attributes(**spec.search), static_summary=spec.summary, **extra,
    )


async def connect(settings: Settings | None = None) -> Client:
    settings = settings or get_settings()
    return await Client.connect(
        settings.temporal_address,
        namespace=settings.temporal_namespace,
        data_converter=pydantic_data_converter,
    )


async def register_search_attributes(client: Client, namespace: str | None = None,
                                     keys: Sequence[SearchAttributeKey[str]] = SEARCH_ATTRIBUTES) -> list[str]:
    """Add the missing ones (idempotent); returns the names it added."""
    namespace = namespace or client.namespace
    try:
        existing = await client.operator_service.list_search_attributes(
            ListSearchAttributesRequest(namespace=namespace)
        )
        known = set(existing.custom_attributes) | set(existing.system_attributes)
    except RPCError as exc:  # the time-skipping test server has no listing: add them all
        if exc.status != RPCStatusCode.UNIMPLEMENTED:
            raise
        known = set()
    missing = {key.name: IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD for key in keys if key.name not in known}
    if missing:
        await client.operator_service.add_search_attributes(
            AddSearchAttributesRequest(namespace=namespace, search_attributes=missing)  # type: ignore[arg-type]
        )
    return sorted(missing)


class LogContextInterceptor(Interceptor):
    """Binds workflow id, activity and attempt into structlog's context for every activity log line."""

    def intercept_activity(self, next: ActivityInboundInterceptor) -> ActivityInboundInterceptor:
        return _BindActivityContext(next)


class _BindActivityContext(ActivityInboundInterceptor):
    async def execute_activity(self, input: ExecuteActivityInput) -> Any:
        info = activity.info()
        structlog.contextvars.clear_contextvars()
        structlog.contextvars.bind_contextvars(workflow_id=info.workflow_id, activity=info.activity_type,
                                               attempt=info.attempt)
        return await self.next.execute_activity(input)


if __name__ == "__main__":
    # `python -m core.temporal`: prints the names, one per line (used by deployment scripts).
    for key in SEARCH_ATTRIBUTES:
        print(key.name)
