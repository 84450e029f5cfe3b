"""An in-process SMTP sink (aiosmtpd) that collects messages and can be told to refuse some."""

import email
import socket
import threading
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.policy import default as default_policy
from typing import Any

from aiosmtpd.controller import Controller

# A scripted reply that makes the sink close the client's connection at the end of DATA, without replying (the
# message is not received): what a server that crashes or drops the session mid-transaction does.
DROP = "DROP"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class SmtpSink:
    messages: list[EmailMessage] = field(default_factory=list)
    # Replies to give instead of accepting, one per DATA command, e.g. ["451 4.3.0 Try later"], or DROP.
    scripted_replies: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    dropped: int = 0  # connections closed by a scripted DROP

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802 (aiosmtpd API)
        with self.lock:
            if self.scripted_replies:
                reply = self.scripted_replies.pop(0)
                if reply == DROP:
                    self.dropped += 1
                    server.transport.abort()  # no reply: the client sees the connection lost
                return reply
            msg = email.message_from_bytes(envelope.content, policy=default_policy)
            assert isinstance(msg, EmailMessage)
            self.messages.append(msg)
        return "250 2.0.0 Message accepted for delivery"

    def clear(self) -> None:
        with self.lock:
            self.messages.clear()
            self.scripted_replies.clear()
            self.dropped = 0

    def to(self, address: str) -> list[EmailMessage]:
        return [m for m in self.messages if address in str(m["To"])]


def body_text(msg: EmailMessage) -> str:
    part = msg.get_body(preferencelist=("plain",))
    assert part is not None
    return str(part.get_content())


def body_html(msg: EmailMessage) -> str:
    part = msg.get_body(preferencelist=("html",))
    assert part is not None
    return str(part.get_content())


def start_sink(port: int) -> tuple[Controller, SmtpSink]:
    sink = SmtpSink()
    controller = Controller(sink, hostname="127.0.0.1", port=port)
    controller.start()
    return controller, sink
