"""structlog set-up: console renderer in dev, JSON otherwise; context comes from contextvars."""

import logging
import sys

import structlog

from core.settings import get_settings


def configure_logging() -> None:
    """Idempotent: every process entry point calls it once at start."""
    settings = get_settings()
    fmt = settings.log_format or ("console" if settings.environment == "dev" else "json")
    renderer: structlog.typing.Processor = (
        structlog.dev.ConsoleRenderer() if fmt == "console" else structlog.processors.JSONRenderer()
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso"),
            structlog.processors.StackInfoRenderer(),
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.INFO),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=True,
    )
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr, format="%(levelname)s %(name)s %(message)s")


log = structlog.get_logger()
