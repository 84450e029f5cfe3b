"""Removal mandates and requests: inputs, signals, activity arguments, type names, and the order of statuses that
the mandate workflow follows (the transition rules themselves belong to `services.removals.service.rules`)."""

from dataclasses import dataclass, field
from datetime import datetime

REMOVAL_MANDATE = "RemovalWorkflow"
REMOVAL_REQUEST = "RemovalRequestWorkflow"
RECORDED = "recorded"

TERMINAL = frozenset({"refusee", "effectuee", "annulee"})
# Statuses only move forward: a late or repeated signal never takes a mandate back.
STATUS_RANK = {"nouvelle": 0, "prevenu": 1, "acceptee": 2, "refusee": 3, "effectuee": 3, "annulee": 3}


@dataclass
class RemovalInput:
    mandate_id: int
    reminder_days: int  # remind the deposer if still Prévenu this many days after the start
    alert_at: datetime | None  # the end of the desired date: alert the requester if not Effectuée by then (none
    # when the request gave no date)
    mail_task_queue: str


@dataclass
class Recorded:
    """Signal `recorded`: a channel wrote this status in the read model (`process.record_action`)."""

    status: str
    label: str = ""  # for the Temporal Web UI's RelaisStatus


@dataclass
class StatusMails:
    mandate_id: int
    status: str


@dataclass
class DeposerNotice:
    """The request's mail to one deposer, written in the outbox: once the server accepts it, the deposer's
    mandates become Prévenu."""

    deposer_id: int
    outbox_id: int


@dataclass
class NotifiedDeposer:
    request_id: int
    deposer_id: int


@dataclass
class RequestInput:
    request_id: int
    task_queue: str
    mail_task_queue: str
    page_size: int = 500


@dataclass
class StartPage:
    request_id: int
    task_queue: str
    mail_task_queue: str
    after_id: int
    limit: int


@dataclass
class StartedPage:
    last_id: int = 0
    count: int = 0
    started: list[str] = field(default_factory=list)
