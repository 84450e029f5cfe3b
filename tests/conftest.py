"""Real parts for the tests: embedded PostgreSQL, Temporal (time-skipping and dev servers), an SMTP sink.

Environment is set at import, before any project module reads its settings.
"""

import asyncio
import os
import shutil
import sys
import tempfile
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING
from uuid import uuid4

import httpx
import pytest
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from tests.support.smtp import SmtpSink, free_port, start_sink

if TYPE_CHECKING:
    from core.signals import SignalRelay

SMTP_PORT = free_port()
CAMPAIGNS_PORT = free_port()
REMOVALS_PORT = free_port()
os.environ.update(
    ENVIRONMENT="test",
    SECRET_KEY="test-secret-key-0123456789-abcdefghijklmnop",
    LOG_FORMAT="console",
    SMTP_HOST="127.0.0.1",
    SMTP_PORT=str(SMTP_PORT),
    CAMPAIGNS_URL=f"http://127.0.0.1:{CAMPAIGNS_PORT}",
    REMOVALS_URL=f"http://127.0.0.1:{REMOVALS_PORT}",
)
os.environ.pop("DATABASE_URL", None)
os.environ.pop("TEMPORAL_ADDRESS", None)
_TMP = Path(tempfile.mkdtemp(prefix="relais-tests-"))


def _bin(name: str) -> str:
    path = shutil.which(name) or shutil.which(name, path=str(Path(sys.executable).parent))
    assert path, f"{name} not found: install the project with `make install`"
    return path


def clear_caches() -> None:
    from core.db import get_engine, get_sessionmaker
    from core.settings import get_settings

    if get_engine.cache_info().currsize:
        get_engine().dispose()
    get_settings.cache_clear()
    get_engine.cache_clear()
    get_sessionmaker.cache_clear()


@pytest.fixture(scope="session", autouse=True)
def database() -> Iterator[str]:
    """One PostgreSQL for the session, migrated and loaded with the demo data."""
    from core.devstack.postgres import start_embedded

    url = start_embedded(_TMP / "pg", on_exit="delete")
    os.environ["DATABASE_URL"] = url
    clear_caches()
    from core.demo import load_demo
    from core.migrate import upgrade_head
    from wiring import SERVICES

    upgrade_head()
    load_demo(SERVICES)
    yield url


@pytest.fixture(scope="session")
def smtp_sink() -> Iterator[SmtpSink]:
    controller, sink = start_sink(SMTP_PORT)
    yield sink
    controller.stop()


@pytest.fixture
def sink(smtp_sink: SmtpSink) -> SmtpSink:
    smtp_sink.clear()
    return smtp_sink


@pytest.fixture(scope="session")
async def time_env() -> AsyncIterator[WorkflowEnvironment]:
    from core.temporal import register_search_attributes

    env = await WorkflowEnvironment.start_time_skipping(
        test_server_existing_path=_bin("temporal-test-server"), data_converter=pydantic_data_converter
    )
    await register_search_attributes(env.client)
    yield env
    await env.shutdown()


@pytest.fixture(scope="session")
async def dev_env() -> AsyncIterator[WorkflowEnvironment]:
    from core.temporal import SEARCH_ATTRIBUTES

    env = await WorkflowEnvironment.start_local(
        dev_server_existing_path=_bin("temporal"), data_converter=pydantic_data_converter,
        search_attributes=SEARCH_ATTRIBUTES,
    )
    os.environ["TEMPORAL_ADDRESS"] = env.client.service_client.config.target_host
    clear_caches()
    yield env
    await env.shutdown()


@pytest.fixture(scope="session")
async def dev_worker(dev_env: WorkflowEnvironment, smtp_sink: SmtpSink) -> AsyncIterator[Client]:
    """The project's real workers on the dev server, with the configured task queue names."""
    from core.settings import get_settings
    from core.signals import stop_relay
    from core.worker import ACTIVITY_THREADS, build_relay, build_workers
    from wiring import PLATFORM_WORKFLOWS, SERVICES, mail_activities

    with ThreadPoolExecutor(ACTIVITY_THREADS) as executor:
        workers = build_workers(dev_env.client, get_settings(), SERVICES, mail_activities,
                                platform_workflows=PLATFORM_WORKFLOWS, executor=executor)
        async with workers[0], workers[1]:
            relay = asyncio.create_task(build_relay(dev_env.client, get_settings()).run())
            yield dev_env.client
            await stop_relay(relay)


@pytest.fixture
async def time_worker(time_env: WorkflowEnvironment, smtp_sink: SmtpSink) -> AsyncIterator[tuple[Client, str, str]]:
    """Workers on fresh task queues of the time-skipping server: (client, task queue, mail task queue)."""
    from core.settings import get_settings
    from core.worker import ACTIVITY_THREADS, build_workers
    from wiring import PLATFORM_WORKFLOWS, SERVICES, mail_activities

    queue, mail_queue = f"tq-{uuid4().hex[:8]}", f"mail-{uuid4().hex[:8]}"
    with ThreadPoolExecutor(ACTIVITY_THREADS) as executor:
        workers: list[Worker] = build_workers(time_env.client, get_settings(), SERVICES, mail_activities,
                                              platform_workflows=PLATFORM_WORKFLOWS, task_queue=queue,
                                              mail_task_queue=mail_queue, executor=executor)
        async with workers[0], workers[1]:
            yield time_env.client, queue, mail_queue


@pytest.fixture
def time_relay(time_worker: tuple[Client, str, str]) -> "SignalRelay":
    """The signal relay of this test's task queues, driven by the test: `await time_relay.deliver_pending()`."""
    from core.settings import get_settings
    from core.worker import build_relay

    client, queue, mail_queue = time_worker
    return build_relay(client, get_settings(), task_queue=queue)


@pytest.fixture(scope="session")
def campaigns_server(database: str, dev_worker: Client, smtp_sink: SmtpSink) -> Iterator[str]:
    """The campaigns service on a real port, talking to the dev server, PostgreSQL and the sink."""
    from services.campaigns.app import app
    from tests.support.web import ServerThread

    server = ServerThread(app, CAMPAIGNS_PORT)
    server.start()
    yield server.url
    server.stop()


@pytest.fixture
async def http(campaigns_server: str) -> AsyncIterator[httpx.AsyncClient]:

    async with httpx.AsyncClient(base_url=campaigns_server, timeout=30) as client:
        yield client


@pytest.fixture(scope="session")
def removals_server(database: str, dev_worker: Client, smtp_sink: SmtpSink) -> Iterator[str]:
    """The removals service on a real port (links in mails point at it), like `campaigns_server`."""
    from services.removals.app import app
    from tests.support.web import ServerThread

    server = ServerThread(app, REMOVALS_PORT)
    server.start()
    yield server.url
    server.stop()


@pytest.fixture
async def removals_http(removals_server: str) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=removals_server, timeout=30) as client:
        yield client
