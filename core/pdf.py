"""HTML -> PDF rendering with WeasyPrint, locked down for untrusted-ish templates.

Two protections:
- ``RestrictedURLFetcher`` only serves files packaged in ``core/pdf_assets/``
  (``relais-asset:/<name>``) and ``data:`` URLs. Anything else (file:, http(s):,
  ftp:, ...) is refused before any I/O, so a template can neither read local
  files nor make the server issue requests (SSRF).
- ``render_pdf`` renders in a spawned child process that is killed when it
  exceeds its time limit: WeasyPrint has no cancellation and a pathological
  document can keep a thread busy forever.
"""

from __future__ import annotations

import logging
import mimetypes
import multiprocessing
from collections.abc import Callable
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any, NoReturn
from urllib import request
from urllib.parse import unquote, urlsplit

from weasyprint import HTML  # type: ignore[import-untyped,unused-ignore]
from weasyprint.urls import URLFetcher, URLFetcherResponse  # type: ignore[import-untyped,unused-ignore]

logger = logging.getLogger(__name__)

ASSET_SCHEME = "relais-asset"
ASSETS_DIR = (Path(__file__).parent / "pdf_assets").resolve()

# 'spawn' rather than 'fork': the parent (FastAPI, Temporal worker) runs threads, and
# forking a threaded process can deadlock the child on a lock held by another thread.
_MP_CONTEXT = multiprocessing.get_context("spawn")


class PdfError(Exception):
    """PDF generation failed; the message is meant for end users (French)."""


class PdfTimeoutError(PdfError):
    def __init__(self, timeout_seconds: float) -> None:
        super().__init__(f"La génération du PDF a dépassé le délai de {timeout_seconds:g} s")
        self.timeout_seconds = timeout_seconds


class RefusedURLError(ValueError):
    """Raised by the fetcher for a forbidden URL.

    A plain ``Exception`` on purpose: WeasyPrint turns it into a logged
    ``URLFetchingError`` and skips the resource instead of aborting the render.
    """


class RestrictedURLFetcher(URLFetcher):  # type: ignore[misc,unused-ignore]
    """WeasyPrint URL fetcher serving only packaged assets and ``data:`` URLs."""

    def __init__(self, assets_dir: Path = ASSETS_DIR) -> None:
        # Belt and braces: even if some code path reached the parent class's
        # opener, it would only accept these schemes and never follow redirects.
        super().__init__(
            timeout=1, allowed_protocols=(ASSET_SCHEME, "data"), allow_redirects=False, fail_on_errors=False
        )
        self.assets_dir = assets_dir.resolve()
        self.refused: list[str] = []
        self.served: list[str] = []

    def fetch(self, url: str, headers: dict[str, str] | None = None) -> Any:
        # Overriding fetch() covers __call__() and open() too: both delegate here.
        scheme = url.split(":", 1)[0].lower() if ":" in url else ""
        if scheme == ASSET_SCHEME:
            response = URLFetcherResponse(url, *self._read_asset(url))
        elif scheme == "data":
            # Decoded locally with the stdlib handler; no opener, so no proxy settings apply.
            with request.DataHandler().data_open(request.Request(url)) as data:  # noqa: S310
                response = URLFetcherResponse(url, data.read(), dict(data.headers.items()))
        else:
            self._refuse(url, "scheme not allowed")
        self.served.append(url)
        return response

    def _read_asset(self, url: str) -> tuple[bytes, dict[str, str]]:
        parts = urlsplit(url)
        if parts.netloc:
            self._refuse(url, "asset URLs take no host")
        try:
            # unquote() before resolve() so that %2e%2e/ cannot sneak past the check.
            path = (self.assets_dir / unquote(parts.path).lstrip("/")).resolve()
        except (OSError, ValueError):
            self._refuse(url, "invalid asset path")
        if not path.is_relative_to(self.assets_dir) or not path.is_file():
            self._refuse(url, "not a packaged asset")
        content_type = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
        return path.read_bytes(), {"Content-Type": content_type}

    def _refuse(self, url: str, reason: str) -> NoReturn:
        self.refused.append(url)
        logger.warning("PDF resource refused (%s): %.200s", reason, url)
        raise RefusedURLError(f"{reason}: {url[:200]}")


def render_pdf_in_process(
    html: str, *, base_url: str | None = None, url_fetcher: RestrictedURLFetcher | None = None
) -> bytes:
    """Render in the current process, without time limit (child side; handy in tests)."""
    fetcher = url_fetcher if url_fetcher is not None else RestrictedURLFetcher()
    pdf: bytes = HTML(string=html, base_url=base_url, url_fetcher=fetcher).write_pdf()
    return pdf


def _child_main(conn: Connection, html: str, base_url: str | None) -> None:
    try:
        conn.send(("ok", render_pdf_in_process(html, base_url=base_url)))
    except Exception as exc:  # reported to the parent, which raises PdfError
        conn.send(("error", f"{type(exc).__name__}: {exc}"))
    finally:
        conn.close()


def _batch_child_main(conn: Connection, htmls: list[str], base_url: str | None) -> None:
    fetcher = RestrictedURLFetcher()
    try:
        for html in htmls:
            try:
                conn.send(("ok", render_pdf_in_process(html, base_url=base_url, url_fetcher=fetcher)))
            except Exception as exc:  # this document failed; the others still render
                conn.send(("error", f"{type(exc).__name__}: {exc}"))
    finally:
        conn.close()


def render_pdfs(htmls: list[str], *, timeout_seconds: float = 30.0, base_url: str | None = None,
                progress: Callable[[int], None] | None = None) -> list[bytes | PdfError]:
    """Render several documents in ONE child process (started once: about a second, shared by the batch), each
    within ``timeout_seconds`` of the previous one. Returns, in order, each document's bytes or the PdfError it
    failed with; after a timeout the child is killed and the documents not yet rendered fail with it too.
    `progress(n)` is called after each document (n done so far): an activity's heartbeat.
    Blocking: call it from a worker thread in async code."""
    if timeout_seconds <= 0:
        raise ValueError("timeout_seconds must be positive")
    if not htmls:
        return []
    reader, writer = _MP_CONTEXT.Pipe(duplex=False)
    process = _MP_CONTEXT.Process(
        target=_batch_child_main, args=(writer, htmls, base_url), name="relais-pdf-batch", daemon=True
    )
    results: list[bytes | PdfError] = []
    try:
        process.start()
        writer.close()
        for index in range(len(htmls)):
            # The first document also waits for the child to start (import WeasyPrint).
            if not reader.poll(timeout_seconds + (5.0 if index == 0 else 0.0)):
                results += [PdfTimeoutError(timeout_seconds)] * (len(htmls) - index)
                break
            try:
                status, payload = reader.recv()
            except EOFError:
                process.join(5)
                failed = PdfError(f"La génération du PDF a échoué (processus terminé, code {process.exitcode})")
                results += [failed] * (len(htmls) - index)
                break
            if status == "ok" and isinstance(payload, bytes):
                results.append(payload)
            else:
                results.append(PdfError(f"La génération du PDF a échoué : {payload}"))
            if progress is not None:
                progress(len(results))
        return results
    finally:
        writer.close()
        reader.close()
        if process.is_alive():
            process.kill()
        if process.pid is not None:
            process.join()
        process.close()


def render_pdf(html: str, *, timeout_seconds: float = 30.0, base_url: str | None = None) -> bytes:
    """Render ``html`` to PDF bytes in a child process killed after ``timeout_seconds``.

    The limit includes starting the child (about a second to import WeasyPrint).
    Blocking: call it from a worker thread in async code.
    """
    if timeout_seconds <= 0:
        raise ValueError("timeout_seconds must be positive")
    reader, writer = _MP_CONTEXT.Pipe(duplex=False)
    process = _MP_CONTEXT.Process(
        target=_child_main, args=(writer, html, base_url), name="relais-pdf", daemon=True
    )
    try:
        process.start()
        # Drop our copy of the write end, so that a crashed child shows up as EOF.
        writer.close()
        if not reader.poll(timeout_seconds):
            raise PdfTimeoutError(timeout_seconds)
        try:
            status, payload = reader.recv()
        except EOFError:
            process.join(5)  # crashed child: wait briefly so the exit code is known
            raise PdfError(
                f"La génération du PDF a échoué (processus terminé, code {process.exitcode})"
            ) from None
        if status != "ok":
            raise PdfError(f"La génération du PDF a échoué : {payload}")
        if not isinstance(payload, bytes):
            raise PdfError("La génération du PDF a renvoyé un résultat inattendu")
        return payload
    finally:
        # Always reap the child: kill it if still running (timeout, error, interrupt).
        writer.close()
        reader.close()
        if process.is_alive():
            process.kill()
        if process.pid is not None:
            process.join()
        process.close()
