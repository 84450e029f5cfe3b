"""Development mail catcher: SMTP in, web page / JSON API / downloads out."""

from __future__ import annotations

import asyncio
import os
import signal
import smtplib
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from pathlib import Path

import aiosmtplib
import httpx
import pytest
from fastapi.testclient import TestClient
from markupsafe import escape

from core.devstack.mailcatcher import MailStore, MessageNotFound, create_app, start_smtp

ROOT = Path(__file__).resolve().parents[1]
SUBJECT_MULTI = "Votre facture n°42 — Relais"
SUBJECT_PLAIN = "Message tout simple"
HTML_BODY = '<p class="salut">Bonjour <b>Alice</b> &amp; co</p><script>alert(1)</script>'
TEXT_BODY = "Bonjour Alice,\nVoici votre facture.\n"
PDF_BYTES = b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n\x00\xff"
TRAVERSAL = "..%2F..%2Fetc%2Fpasswd"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _multipart() -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = "Relais <noreply@relais.test>"
    msg["To"] = "alice@example.test"
    msg["Cc"] = "compta@example.test"
    msg["Subject"] = SUBJECT_MULTI
    msg["Date"] = formatdate(localtime=True)
    msg["Message-ID"] = make_msgid(domain="relais.test")
    msg.set_content(TEXT_BODY)
    msg.add_alternative(HTML_BODY, subtype="html")
    msg.add_attachment(PDF_BYTES, maintype="application", subtype="pdf", filename="facture-42.pdf")
    return msg


def _plain() -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = "bob@example.test"
    msg["To"] = "carol@example.test"
    msg["Subject"] = SUBJECT_PLAIN
    msg["Date"] = formatdate(localtime=True)
    msg["Message-ID"] = make_msgid(domain="example.test")
    msg.set_content("Juste du texte.")
    return msg


@pytest.fixture
def store_dir(tmp_path: Path) -> Iterator[Path]:
    port = _free_port()
    store = tmp_path / "mail"
    controller = start_smtp(store, "127.0.0.1", port)
    try:

        async def send_all() -> None:
            await aiosmtplib.send(_multipart(), hostname="127.0.0.1", port=port)
            # Extra envelope recipient not in the headers, like a Bcc.
            rcpts = ["carol@example.test", "secret@example.test"]
            await aiosmtplib.send(_plain(), hostname="127.0.0.1", port=port, recipients=rcpts)

        asyncio.run(send_all())
    finally:
        controller.stop()
    yield store


@pytest.fixture
def client(store_dir: Path) -> TestClient:
    return TestClient(create_app(store_dir))


def _ids(client: TestClient) -> dict[str, str]:
    return {m["subject"]: m["id"] for m in client.get("/api/messages").json()}


def test_list_page_shows_both_subjects_newest_first(client: TestClient) -> None:
    page = client.get("/")
    assert page.status_code == 200
    assert "Boîte de réception (développement)" in page.text
    assert str(escape(SUBJECT_MULTI)) in page.text and SUBJECT_PLAIN in page.text
    assert page.text.index(SUBJECT_PLAIN) < page.text.index(str(escape(SUBJECT_MULTI)))
    assert "Tout supprimer" in page.text


def test_detail_page_sandboxes_html_and_shows_text(client: TestClient) -> None:
    message_id = _ids(client)[SUBJECT_MULTI]
    page = client.get(f"/messages/{message_id}")
    assert page.status_code == 200
    assert f'<iframe sandbox srcdoc="{escape(HTML_BODY)}' in page.text  # then "\n" from set_content
    assert "<script>alert(1)" not in page.text and "<b>Alice</b>" not in page.text
    assert f"<pre>{escape(TEXT_BODY)}" in page.text
    assert f'href="/messages/{message_id}/attachments/0">facture-42.pdf</a>' in page.text
    for header in ("noreply@relais.test", "compta@example.test", "Message-ID"):
        assert header in page.text


def test_attachment_download(client: TestClient) -> None:
    message_id = _ids(client)[SUBJECT_MULTI]
    resp = client.get(f"/messages/{message_id}/attachments/0")
    assert resp.status_code == 200
    assert resp.content == PDF_BYTES
    assert resp.headers["content-type"] == "application/pdf"
    assert resp.headers["content-disposition"].startswith('attachment; filename="facture-42.pdf"')
    assert client.get(f"/messages/{message_id}/attachments/1").status_code == 404


def test_json_api(client: TestClient) -> None:
    listing = client.get("/api/messages").json()
    assert [m["subject"] for m in listing] == [SUBJECT_PLAIN, SUBJECT_MULTI]
    for key in ("id", "from", "to", "subject", "date", "message_id"):
        assert all(m[key] for m in listing), key

    detail = client.get(f"/api/messages/{listing[1]['id']}").json()
    assert detail["to"] == "alice@example.test" and detail["cc"] == "compta@example.test"
    assert detail["text"] == TEXT_BODY
    assert detail["html"].strip() == HTML_BODY
    assert detail["attachments"][0]["filename"] == "facture-42.pdf"
    assert detail["attachments"][0]["size"] == len(PDF_BYTES)

    plain = client.get(f"/api/messages/{listing[0]['id']}").json()
    assert plain["html"] is None and plain["attachments"] == []
    assert "secret@example.test" in plain["envelope_to"]  # Bcc-like recipient kept


def test_invalid_or_traversal_ids_are_404(client: TestClient, store_dir: Path) -> None:
    unknown = "0" * 20 + "-" + "a" * 32
    # (a bare ".." is not tried: httpx itself normalises it away before sending)
    for message_id in (TRAVERSAL, "%2e%2e", "..%2Fmail%2Fx", unknown, "x.eml"):
        for url in (
            f"/messages/{message_id}",
            f"/api/messages/{message_id}",
            f"/messages/{message_id}/attachments/0",
            f"/messages/{message_id}/raw",
        ):
            assert client.get(url).status_code == 404, url
    with pytest.raises(MessageNotFound):
        MailStore(store_dir).get("../../etc/passwd")


def test_clear_empties_the_store(client: TestClient, store_dir: Path) -> None:
    resp = client.post("/clear", follow_redirects=False)
    assert resp.status_code == 303 and resp.headers["location"] == "/"
    assert client.get("/api/messages").json() == []
    assert "Aucun message reçu" in client.get("/").text
    assert list(store_dir.glob("*.eml")) == []


def test_store_survives_restart(store_dir: Path) -> None:
    # A fresh store on the same folder (= a restarted catcher) still lists the mails.
    messages = MailStore(store_dir).list_messages()
    assert [m.header("Subject") for m in messages] == [SUBJECT_PLAIN, SUBJECT_MULTI]


def test_cli_serves_and_stops_cleanly_on_sigterm(tmp_path: Path) -> None:
    smtp_port, http_port = _free_port(), _free_port()
    cmd = [
        sys.executable,
        "-m",
        "core.devstack.mailcatcher",
        "--smtp-port",
        str(smtp_port),
        "--http-port",
        str(http_port),
        "--store",
        str(tmp_path / "mail"),
    ]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        base = f"http://127.0.0.1:{http_port}"
        deadline = time.monotonic() + 15
        while True:
            try:
                httpx.get(f"{base}/api/messages", timeout=1)
                break
            except httpx.TransportError:
                assert proc.poll() is None and time.monotonic() < deadline, "catcher did not start"
                time.sleep(0.1)
        with smtplib.SMTP("127.0.0.1", smtp_port, timeout=5) as smtp:
            smtp.send_message(_plain())
        assert [m["subject"] for m in httpx.get(f"{base}/api/messages").json()] == [SUBJECT_PLAIN]
        os.kill(proc.pid, signal.SIGTERM)
        output = proc.communicate(timeout=15)[0].decode()
        assert proc.returncode == 0, output
        assert "SMTP arrêté" in output
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
