"""Alembic environment. airloop runs migrations itself (``airloop db migrate``), handing
Alembic an open connection in ``config.attributes["connection"]``."""

from __future__ import annotations

from alembic import context

from airloop.store.schema import metadata

config = context.config
connection = config.attributes.get("connection")
if connection is None:
    raise RuntimeError("run migrations with 'airloop db migrate', not the alembic command")

context.configure(
    connection=connection,
    target_metadata=metadata,
    render_as_batch=connection.dialect.name == "sqlite",
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
