"""Web UI (French) and JSON API of the development mail catcher."""

from __future__ import annotations

import re
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

from fastapi import FastAPI, HTTPException
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from jinja2 import Environment, FileSystemLoader

from core.devstack.mailcatcher import Attachment, MailStore, MessageNotFound, StoredMessage
from core.ui import paris

_TEMPLATES = Path(__file__).with_name("mailcatcher_templates")
_CID_RE = re.compile(r"cid:([^\"'\s)>]+)", re.IGNORECASE)
_UNSAFE_FILENAME_RE = re.compile(r'[^\x20-\x7e]|["\\]')
# Attachments come from arbitrary senders: never let the browser sniff or run them
# in our origin, even if opened directly instead of downloaded.
_DOWNLOAD_HEADERS = {"X-Content-Type-Options": "nosniff", "Content-Security-Policy": "sandbox"}
_HEADER_LABELS = [
    ("De", "From"),
    ("À", "To"),
    ("Cc", "Cc"),
    ("Sujet", "Subject"),
    ("Date", "Date"),
    ("Message-ID", "Message-ID"),
]


def _human_size(size: int) -> str:
    if size < 1024:
        return f"{size} o"
    value, unit = (size / 1024, "Ko") if size < 1024**2 else (size / 1024**2, "Mo")
    return f"{value:.1f} {unit}".replace(".", ",")  # French decimal comma


def _date_display(message: StoredMessage) -> str:
    try:
        parsed = getattr(message.msg.get("Date"), "datetime", None)
    except Exception:  # unparsable Date header: fall back to the reception time
        parsed = None
    when = parsed if isinstance(parsed, datetime) else message.received_at
    return paris(when, "%d/%m/%Y %H:%M:%S")  # French local time, whatever the machine's time zone


def _summary(message: StoredMessage) -> dict[str, Any]:
    fields = {"from": "From", "to": "To", "subject": "Subject", "date": "Date", "message_id": "Message-ID"}
    return {
        "id": message.id,
        **{key: message.header(name) for key, name in fields.items()},
        "received_at": message.received_at.isoformat(),
        "attachments": len(message.attachments),
    }


def _disposition(filename: str) -> str:
    # ASCII fallback for old clients + RFC 5987 form; also blocks header injection.
    fallback = _UNSAFE_FILENAME_RE.sub("_", filename) or "piece-jointe"
    return f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{quote(filename, safe='')}"


def _attachment_url(message_id: str, index: int) -> str:
    return f"/messages/{message_id}/attachments/{index}"


def _inline_cid_images(message: StoredMessage, html: str) -> str:
    # Point cid: references (inline images) at our download endpoint so they show up.
    urls = {a.content_id: _attachment_url(message.id, a.index) for a in message.attachments if a.content_id}
    return _CID_RE.sub(lambda m: urls.get(m.group(1), m.group(0)), html)


def _attachment_json(message_id: str, attachment: Attachment) -> dict[str, Any]:
    return {
        "index": attachment.index,
        "filename": attachment.filename,
        "content_type": attachment.content_type,
        "size": len(attachment.data),
        "url": _attachment_url(message_id, attachment.index),
    }


def build_app(store: MailStore) -> FastAPI:
    # Autoescape everything: every value shown comes from an untrusted mail.
    env = Environment(loader=FileSystemLoader(_TEMPLATES), autoescape=True)
    env.filters["human_size"] = _human_size
    env.filters["date_display"] = _date_display
    app = FastAPI(title="Relais – capteur de mails (développement)")

    def render(template: str, **context: Any) -> HTMLResponse:
        return HTMLResponse(env.get_template(template).render(**context))

    def load(message_id: str) -> StoredMessage:
        try:
            return store.get(message_id)
        except MessageNotFound:
            raise HTTPException(status_code=404, detail="Message introuvable") from None

    @app.get("/", response_class=HTMLResponse)
    def inbox() -> HTMLResponse:
        return render("index.html", messages=store.list_messages())

    @app.get("/messages/{message_id}", response_class=HTMLResponse)
    def message_page(message_id: str) -> HTMLResponse:
        message = load(message_id)
        html = _inline_cid_images(message, message.html) if message.html is not None else None
        headers = [(label, message.header(name)) for label, name in _HEADER_LABELS]
        envelope = (message.header("X-Envelope-From"), message.header("X-Envelope-To"))
        return render("message.html", m=message, html=html, headers=headers, envelope=envelope)

    @app.get("/messages/{message_id}/raw")
    def message_raw(message_id: str) -> Response:
        try:
            raw = store.raw(message_id)
        except MessageNotFound:
            raise HTTPException(status_code=404, detail="Message introuvable") from None
        headers = {"Content-Disposition": _disposition(f"{message_id}.eml"), **_DOWNLOAD_HEADERS}
        return Response(raw, media_type="message/rfc822", headers=headers)

    @app.get("/messages/{message_id}/attachments/{index}")
    def attachment(message_id: str, index: int) -> Response:
        attachments = load(message_id).attachments
        if not 0 <= index < len(attachments):
            raise HTTPException(status_code=404, detail="Pièce jointe introuvable")
        found = attachments[index]
        headers = {"Content-Disposition": _disposition(found.filename), **_DOWNLOAD_HEADERS}
        return Response(found.data, media_type=found.content_type, headers=headers)

    @app.post("/clear")
    def clear() -> RedirectResponse:
        store.clear()
        return RedirectResponse("/", status_code=303)  # 303: the browser follows with a GET

    @app.get("/api/messages")
    def api_list() -> list[dict[str, Any]]:
        return [_summary(message) for message in store.list_messages()]

    @app.delete("/api/messages")
    def api_clear() -> dict[str, int]:
        return {"deleted": store.clear()}

    @app.get("/api/messages/{message_id}")
    def api_message(message_id: str) -> dict[str, Any]:
        message = load(message_id)
        return {
            **_summary(message),
            "cc": message.header("Cc"),
            "envelope_from": message.header("X-Envelope-From"),
            "envelope_to": message.header("X-Envelope-To"),
            "text": message.text,
            "html": message.html,
            "attachments": [_attachment_json(message.id, a) for a in message.attachments],
        }

    return app
