"""HTTP helpers for tests: a real uvicorn server in a thread, login with CSRF, form posts."""

import html
import re
import threading
import time

import httpx
import uvicorn
from fastapi import FastAPI

CSRF_RE = re.compile(r'name="csrf_token" value="([^"]+)"')


class ServerThread:
    """Serve an ASGI app on 127.0.0.1:port from a background thread (its own event loop)."""

    def __init__(self, app: FastAPI, port: int) -> None:
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.url = f"http://127.0.0.1:{port}"

    def start(self) -> None:
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            if time.monotonic() > deadline:
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.05)

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


def csrf_from(html: str) -> str:
    match = CSRF_RE.search(html)
    assert match, "no CSRF token in page"
    return match.group(1)


async def login(client: httpx.AsyncClient, email: str, password: str = "relais-demo") -> httpx.Response:
    page = await client.get("/login")
    return await client.post("/login", data={"email": email, "password": password, "csrf_token": csrf_from(page.text),
                                             "next": "/"})


def text(response: httpx.Response) -> str:
    """The page as a reader sees it: HTML entities decoded (n&#39;existe → n'existe)."""
    return html.unescape(response.text)
