"""Results of the mail activities (`activities.mail`, `activities.mail_batch`)."""

from dataclasses import dataclass


@dataclass(frozen=True)
class SendResult:
    outbox_id: int
    status: str  # "sent" | "ko"
    reply: str


@dataclass
class BatchSendResult:
    sent: int
    ko: int
    pending: int


@dataclass(frozen=True)
class SingleMailInput:
    """One outbox row to send, already written by the producer (`workflows.single_mail`)."""

    outbox_id: int
    mail_task_queue: str
