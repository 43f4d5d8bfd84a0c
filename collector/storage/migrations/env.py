"""Collector storage: the alembic environment, configured by code rather than alembic.ini.

``collector.storage.engine.upgrade`` hands over an open connection (already inside its
transaction and, on PostgreSQL, holding the migration lock) in ``config.attributes``, so
migrations run on exactly the database the collector opened. Offline mode (``--sql``)
renders the DDL from the URL set as ``sqlalchemy.url``.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy.engine import Connection

from collector.storage.schema import metadata

config = context.config


def run_offline() -> None:
    context.configure(
        url=config.get_main_option("sqlalchemy.url"),
        target_metadata=metadata,
        literal_binds=True,
        render_as_batch=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_online() -> None:
    connection = config.attributes.get("connection")
    if not isinstance(connection, Connection):
        raise RuntimeError("netsonde migrations run through collector.storage.open_storage")
    # Batch mode lets later revisions alter tables on SQLite, which has little ALTER TABLE.
    context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    run_offline()
else:
    run_online()
