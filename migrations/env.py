"""Alembic environment: one migration history for the whole platform, one schema per service."""

from alembic import context
from sqlalchemy import text

from core.db import Base, get_engine
from core.demo import import_models
from wiring import SERVICES

import_models(SERVICES)
SCHEMAS = sorted({t.schema for t in Base.metadata.tables.values() if t.schema})


def run_migrations_online() -> None:
    with get_engine().connect() as connection:
        for schema in SCHEMAS:
            connection.execute(text(f'CREATE SCHEMA IF NOT EXISTS "{schema}"'))
        connection.commit()
        context.configure(
            connection=connection,
            target_metadata=Base.metadata,
            include_schemas=True,
            version_table_schema="core",
            compare_type=True,
        )
        with context.begin_transaction():
            context.run_migrations()


run_migrations_online()
