"""core.pdf: the restricted URL fetcher never reads local files nor reaches the network,
packaged assets load, and the time limit kills the rendering process."""

from __future__ import annotations

import sys
import threading
import urllib.request
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import psutil
import pytest
from weasyprint import HTML
from weasyprint.urls import URLFetcher

from core.pdf import (
    ASSETS_DIR,
    PdfError,
    PdfTimeoutError,
    RefusedURLError,
    RestrictedURLFetcher,
    render_pdf,
    render_pdf_in_process,
    render_pdfs,
)

SECRET_FILE = "file:///etc/passwd"


class Listener:
    """A real HTTP server on 127.0.0.1 that records every request it receives."""

    def __init__(self) -> None:
        self.requests: list[str] = []
        recorded = self.requests

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (http.server API)
                recorded.append(self.path)
                body = b"body { color: red; }"
                self.send_response(200)
                self.send_header("Content-Type", "text/css")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:  # keep test output quiet
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"


@pytest.fixture
def listener() -> Iterator[Listener]:
    srv = Listener()
    srv.thread.start()
    # Sanity check: the listener does see requests, so "zero requests" below means something.
    with urllib.request.urlopen(srv.url("/ping"), timeout=5) as resp:
        assert resp.status == 200
    assert srv.requests == ["/ping"]
    srv.requests.clear()
    yield srv
    srv.server.shutdown()
    srv.server.server_close()


def hostile_html(listener: Listener) -> str:
    css_url = listener.url("/x.css")
    return f"""<!doctype html>
<html><head>
<link rel="stylesheet" href="relais-asset:/base.css">
<link rel="stylesheet" href="{SECRET_FILE}">
<link rel="stylesheet" href="{css_url}">
<link rel="attachment" href="{SECRET_FILE}">
<style>
  @import url("{SECRET_FILE}");
  @import url("{css_url}");
  .bg {{ background: url("{SECRET_FILE}"); }}
  .bg2 {{ background: url("{listener.url("/bg.png")}"); }}
</style>
</head><body>
<h1>Rapport</h1>
<p class="bg">secret? <img src="{SECRET_FILE}" alt=""></p>
<p class="bg2"><img src="{listener.url("/img.png")}" alt=""></p>
<iframe src="{SECRET_FILE}"></iframe>
<object data="{SECRET_FILE}" type="text/plain"></object>
<embed src="{listener.url("/embed.svg")}" type="image/svg+xml">
<a rel="attachment" href="{SECRET_FILE}">pièce jointe</a>
</body></html>"""


# Audit hooks cannot be removed; this one only records while _AUDIT is set.
_AUDIT: list[tuple[str, str]] | None = None


def _audit_hook(event: str, args: tuple[Any, ...]) -> None:
    if _AUDIT is None:
        return
    if event == "open" and str(args[0]) == "/etc/passwd":
        _AUDIT.append((event, str(args[0])))
    elif event in ("socket.connect", "socket.getaddrinfo"):
        _AUDIT.append((event, repr(args[1:])))


sys.addaudithook(_audit_hook)


def test_control_default_fetcher_does_fetch(listener: Listener) -> None:
    """Control: stock WeasyPrint would hit the listener, so the document really references it."""
    HTML(string=hostile_html(listener), url_fetcher=URLFetcher(timeout=5)).write_pdf()
    assert "/x.css" in listener.requests


def test_restricted_fetcher_refuses_file_and_http(listener: Listener) -> None:
    global _AUDIT
    fetcher = RestrictedURLFetcher()
    _AUDIT = []
    try:
        pdf = render_pdf_in_process(hostile_html(listener), url_fetcher=fetcher)
        events = list(_AUDIT)
    finally:
        _AUDIT = None
    assert pdf.startswith(b"%PDF")
    assert SECRET_FILE in fetcher.refused
    assert listener.url("/x.css") in fetcher.refused
    assert listener.url("/img.png") in fetcher.refused
    # Never opened /etc/passwd, never touched a socket, and the listener saw nothing.
    assert events == []
    assert listener.requests == []
    assert fetcher.served == ["relais-asset:/base.css"]


def test_render_pdf_subprocess_hostile_document(listener: Listener) -> None:
    pdf = render_pdf(hostile_html(listener), timeout_seconds=60)
    assert pdf.startswith(b"%PDF")
    assert b"%%EOF" in pdf[-32:]
    assert listener.requests == []


def test_packaged_asset_is_applied() -> None:
    fetcher = RestrictedURLFetcher()
    html = '<link rel="stylesheet" href="relais-asset:/base.css"><body><p>Bonjour</p></body>'
    doc = HTML(string=html, url_fetcher=fetcher).render()
    assert fetcher.refused == []
    assert fetcher.served == ["relais-asset:/base.css"]
    body = doc.pages[0]._page_box.children[0].children[0]
    assert body.element_tag == "body"
    # base.css sets body { color: #1f2933 } = rgb(31, 41, 51).
    assert [round(c * 255) for c in body.style["color"].to("srgb").coordinates] == [31, 41, 51]


@pytest.mark.parametrize(
    "url",
    [
        "relais-asset:/../pdf.py",
        "relais-asset:/%2e%2e/pdf.py",
        "relais-asset:/%2E%2E/%2E%2E/pyproject.toml",
        "relais-asset:/missing.css",
        "relais-asset:/",
        "relais-asset://evil.example/base.css",
        "relais-asset:/" + str(ASSETS_DIR / ".." / "pdf.py"),
        "file:///etc/passwd",
        "FILE:///etc/passwd",
        "http://127.0.0.1:1/x.css",
        "https://example.com/x.css",
        "ftp://example.com/x",
        "base.css",
    ],
)
def test_fetcher_refuses(url: str) -> None:
    fetcher = RestrictedURLFetcher()
    with pytest.raises(RefusedURLError):
        fetcher.fetch(url)
    assert fetcher.refused == [url]
    assert fetcher.served == []


def test_fetcher_serves_asset_and_data() -> None:
    fetcher = RestrictedURLFetcher()
    asset = fetcher("relais-asset:/base.css")
    assert asset.content_type == "text/css"
    assert asset.read() == (ASSETS_DIR / "base.css").read_bytes()
    data = fetcher.fetch("data:text/plain;base64,Qm9uam91cg==")
    assert data.read() == b"Bonjour"
    assert fetcher.refused == []


def _live_render_children(before: set[int]) -> list[psutil.Process]:
    # The multiprocessing resource tracker is a long-lived helper shared by all
    # spawned processes, not a leftover of render_pdf.
    leftovers = []
    for child in psutil.Process().children(recursive=True):
        try:
            if child.pid not in before and "resource_tracker" not in " ".join(child.cmdline()):
                leftovers.append(child)
        except psutil.NoSuchProcess:
            pass
    return leftovers


def test_timeout_kills_child() -> None:
    before = {p.pid for p in psutil.Process().children(recursive=True)}
    with pytest.raises(PdfTimeoutError) as excinfo:
        render_pdf("<p>Bonjour</p>", timeout_seconds=0.001)
    assert isinstance(excinfo.value, PdfError)
    assert str(excinfo.value) == "La génération du PDF a dépassé le délai de 0.001 s"
    assert _live_render_children(before) == []


def test_render_pdf_ok_leaves_no_child() -> None:
    before = {p.pid for p in psutil.Process().children(recursive=True)}
    pdf = render_pdf('<link rel="stylesheet" href="relais-asset:/base.css"><h1>Relais</h1>')
    assert pdf.startswith(b"%PDF")
    assert _live_render_children(before) == []


def test_invalid_timeout() -> None:
    with pytest.raises(ValueError):
        render_pdf("<p>x</p>", timeout_seconds=0)


def test_render_pdfs_batch_in_one_child_keeps_order_and_isolates_a_slow_document() -> None:
    before = {p.pid for p in psutil.Process().children(recursive=True)}
    small = ['<link rel="stylesheet" href="relais-asset:/base.css"><h1>Avis n°1</h1>',
             f'<h1>Avis n°2</h1><img src="{SECRET_FILE}">']  # a refused resource does not fail the document
    beats: list[int] = []
    results = render_pdfs(small, timeout_seconds=20, progress=beats.append)  # an activity's heartbeat
    assert [isinstance(r, bytes) and r.startswith(b"%PDF") for r in results] == [True, True]
    assert beats == [1, 2]
    assert results[0] != results[1]
    huge = "<table>" + "<tr><td>ligne</td><td>ligne</td></tr>" * 40_000 + "</table>"
    results = render_pdfs([small[0], huge, small[0]], timeout_seconds=1.5)
    assert isinstance(results[0], bytes)
    assert [type(r) for r in results[1:]] == [PdfTimeoutError, PdfTimeoutError]  # killed: the rest fails too
    assert _live_render_children(before) == []
    assert render_pdfs([], timeout_seconds=1) == []
