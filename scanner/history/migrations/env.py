"""Alembic environment: runs on the connection the store hands over (never a URL from
a file), inside the store's transaction, so an upgrade is all or nothing."""

from __future__ import annotations

from alembic import context

from scanner.history.schema import Base

connection = context.config.attributes["connection"]
context.configure(connection=connection, target_metadata=Base.metadata,
                  render_as_batch=connection.dialect.name == "sqlite")
with context.begin_transaction():
    context.run_migrations()
