"""Development mail catcher: an SMTP sink that keeps every mail as a .eml file,
plus a small French web UI / JSON API (see mailcatcher_web.py) to read them.

    python -m core.devstack.mailcatcher --smtp-host 127.0.0.1 --smtp-port 1025 \
        --http-host 127.0.0.1 --http-port 8025 --store .data/mail
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import email
import logging
import os
import re
import signal
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.message import EmailMessage
from email.policy import default as default_policy
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aiosmtpd.controller import Controller

if TYPE_CHECKING:
    from fastapi import FastAPI

log = logging.getLogger("relais.mailcatcher")

# "<20-digit ns timestamp>-<uuid4 hex>": names sort chronologically (also across
# restarts), and this exact shape is the only id accepted from URLs, so an id can
# never address a file the store did not write itself (no path traversal).
_ID_RE = re.compile(r"\d{20}-[0-9a-f]{32}")


class MessageNotFound(LookupError):
    """Unknown or malformed message id."""


@dataclass(frozen=True)
class Attachment:
    index: int
    filename: str
    content_type: str  # includes the charset for text/* so downloads decode correctly
    data: bytes = field(repr=False)
    content_id: str | None = None


def _part_bytes(part: EmailMessage) -> bytes:
    decoded = part.get_payload(decode=True)
    if isinstance(decoded, bytes):
        return decoded
    # message/rfc822 & co. hold parsed sub-messages, not a transfer-encoded payload.
    payload = part.get_payload()
    subs = payload if isinstance(payload, list) else [payload]
    return b"".join(sub.as_bytes() if hasattr(sub, "as_bytes") else str(sub).encode() for sub in subs)


def _part_text(part: EmailMessage | None) -> str | None:
    if part is None:
        return None
    try:
        text = str(part.get_content())
    except (LookupError, UnicodeError):  # unknown/lying charset: show something anyway
        text = _part_bytes(part).decode("utf-8", errors="replace")
    return text.replace("\r\n", "\n")  # SMTP stores CRLF; scripts & <pre> want "\n"


@dataclass
class StoredMessage:
    id: str
    received_at: datetime
    msg: EmailMessage

    def header(self, name: str) -> str:
        try:
            value = self.msg.get(name)
            return "" if value is None else str(value)
        except Exception:  # the stdlib header parser still raises on some malformed input
            raw = next((v for k, v in self.msg.raw_items() if k.lower() == name.lower()), "")
            return str(raw)

    @cached_property
    def text(self) -> str | None:
        return _part_text(self.msg.get_body(preferencelist=("plain",)))  # type: ignore[arg-type]

    @cached_property
    def html(self) -> str | None:
        return _part_text(self.msg.get_body(preferencelist=("html",)))  # type: ignore[arg-type]

    @cached_property
    def attachments(self) -> list[Attachment]:
        # Every leaf part that is not the chosen text/html body counts as an attachment
        # (inline images included); forwarded message/rfc822 parts stay whole.
        bodies = [self.msg.get_body(preferencelist=(kind,)) for kind in ("plain", "html")]
        leaves: list[EmailMessage] = []

        def visit(part: EmailMessage) -> None:
            if part.get_content_maintype() == "multipart":
                for sub in part.iter_parts():
                    visit(sub)  # type: ignore[arg-type]
            elif not any(part is body for body in bodies):
                leaves.append(part)

        visit(self.msg)
        found = []
        for index, part in enumerate(leaves):
            ctype, charset = part.get_content_type(), part.get_content_charset()
            if charset and part.get_content_maintype() == "text":
                ctype = f"{ctype}; charset={charset}"
            cid = str(part.get("Content-ID", "")).strip().strip("<>") or None
            name = part.get_filename() or f"piece-jointe-{index + 1}"
            found.append(Attachment(index, name, ctype, _part_bytes(part), cid))
        return found


class MailStore:
    """A folder of .eml files; the file stem is the message id."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)

    def _path(self, message_id: str) -> Path:
        if not _ID_RE.fullmatch(message_id):
            raise MessageNotFound(message_id)
        return self.root / f"{message_id}.eml"

    def save(self, raw: bytes) -> str:
        message_id = f"{time.time_ns():020d}-{uuid.uuid4().hex}"
        tmp = self.root / f".{message_id}.tmp"
        tmp.write_bytes(raw)
        os.replace(tmp, self._path(message_id))  # atomic: readers never see half a mail
        return message_id

    def ids(self) -> list[str]:
        """Message ids, newest first."""
        stems = (p.stem for p in self.root.glob("*.eml"))
        return sorted((s for s in stems if _ID_RE.fullmatch(s)), reverse=True)

    def list_messages(self) -> list[StoredMessage]:
        found = []
        for message_id in self.ids():
            with contextlib.suppress(MessageNotFound):  # deleted between listing and reading
                found.append(self.get(message_id))
        return found

    def raw(self, message_id: str) -> bytes:
        try:
            return self._path(message_id).read_bytes()
        except FileNotFoundError:
            raise MessageNotFound(message_id) from None

    def get(self, message_id: str) -> StoredMessage:
        msg = email.message_from_bytes(self.raw(message_id), policy=default_policy)
        received = datetime.fromtimestamp(int(message_id[:20]) / 1e9, tz=UTC)
        return StoredMessage(message_id, received.astimezone(), msg)

    def clear(self) -> int:
        paths = [self.root / f"{message_id}.eml" for message_id in self.ids()]
        for path in paths:
            path.unlink(missing_ok=True)
        return len(paths)


class _StoreHandler:
    """aiosmtpd handler: accept every mail, whoever it is for, and store it."""

    def __init__(self, store: MailStore) -> None:
        self.store = store

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        # Keep the SMTP envelope too: Bcc recipients exist nowhere else.
        prefix = (
            f"X-Envelope-From: {envelope.mail_from}\r\nX-Envelope-To: {', '.join(envelope.rcpt_tos)}\r\n"
        ).encode()
        try:
            raw = prefix + (envelope.original_content or b"")
            message_id = await asyncio.to_thread(self.store.save, raw)
        except OSError:
            log.exception("Impossible d'enregistrer le message")
            return "451 4.3.0 Erreur de stockage, réessayez plus tard"
        log.info("Message %s reçu de %s pour %s", message_id, envelope.mail_from, envelope.rcpt_tos)
        return "250 Message accepted for delivery"


def start_smtp(store: MailStore | Path, host: str, port: int) -> Controller:
    """Start the SMTP sink in its own thread; call .stop() on the result."""
    mail_store = store if isinstance(store, MailStore) else MailStore(store)
    controller = Controller(_StoreHandler(mail_store), hostname=host, port=port)
    controller.start()
    return controller


def create_app(store: MailStore | Path) -> FastAPI:
    # Imported lazily: the web module imports MailStore & co. from this module.
    from core.devstack.mailcatcher_web import build_app

    return build_app(store if isinstance(store, MailStore) else MailStore(store))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Relais – capteur de mails de développement")
    for name, default in (("smtp", 1025), ("http", 8025)):
        parser.add_argument(f"--{name}-host", default="127.0.0.1")
        parser.add_argument(f"--{name}-port", type=int, default=default)
    parser.add_argument("--store", type=Path, default=Path(".data/mail"))
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("mail.log").setLevel(logging.WARNING)  # aiosmtpd logs every SMTP verb at INFO

    import uvicorn

    # uvicorn shuts down gracefully on SIGINT/SIGTERM, then re-raises the signal to
    # the previous handler. With the default SIGTERM handler the process would die
    # right there, skipping controller.stop(); make it a KeyboardInterrupt instead.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    store = MailStore(args.store)
    controller: Controller | None = None
    try:
        controller = start_smtp(store, args.smtp_host, args.smtp_port)
        log.info("SMTP sur %s:%d, stockage dans %s", args.smtp_host, args.smtp_port, store.root)
        config = uvicorn.Config(create_app(store), host=args.http_host, port=args.http_port)
        uvicorn.Server(config).run()
    except KeyboardInterrupt:
        pass
    finally:
        if controller is not None:
            controller.stop()
            log.info("SMTP arrêté")
    return 0


if __name__ == "__main__":
    # Under `python -m` this file is `__main__`, a second copy of the module; run the
    # canonical one so the web module shares the same MailStore/MessageNotFound classes.
    from core.devstack.mailcatcher import main as _main

    raise SystemExit(_main())
