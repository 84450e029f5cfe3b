"""SQLAlchemy 2 engine and sessions (psycopg 3), plus the one organisation-scoping helper."""

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any, TypeVar, cast

from sqlalchemy import BigInteger, DateTime, ForeignKey, MetaData, Select, Table, create_engine, select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, sessionmaker

from core.settings import get_settings

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


def utcnow() -> datetime:
    return datetime.now(UTC)


class Timestamped:
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, onupdate=utcnow)


class OrgScoped:
    """Rows that belong to one client organisation; read them only through `scoped()`."""

    organisation_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("core.organisations.id", ondelete="CASCADE"), index=True
    )


M = TypeVar("M", bound=OrgScoped)


def scoped(model: type[M], organisation_id: int) -> Select[M]:
    """The only way to select organisation-owned rows: the organisation filter is never forgotten."""
    return select(model).where(model.organisation_id == organisation_id)


def get_scoped(session: Session, model: type[M], pk: Any, organisation_id: int) -> M | None:
    """One row by primary key, or None when it does not exist *or* belongs to another organisation."""
    return session.scalars(scoped(model, organisation_id).where(model.id == pk)).first()  # type: ignore[attr-defined]


def table(model: type[Base]) -> Table:
    """The Core table of a model: plain INSERT / UPDATE statements on hot paths (the ORM-enabled forms cost more
    than the statement itself)."""
    return cast(Table, model.__table__)


@lru_cache
def get_engine() -> Engine:
    settings = get_settings()
    return create_engine(
        settings.sqlalchemy_url,
        pool_size=settings.db_pool_size,
        max_overflow=10,
        pool_pre_ping=True,
        connect_args={"connect_timeout": 5},
    )


@lru_cache
def get_sessionmaker() -> sessionmaker[Session]:
    return sessionmaker(bind=get_engine(), expire_on_commit=False)


@contextmanager
def session_scope() -> Iterator[Session]:
    """A unit of work: commit on success, roll back on any error (no partial write)."""
    session = get_sessionmaker()()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()
