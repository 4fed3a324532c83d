"""Alembic environment: runs on the connection handed over by ``localcast.control.db``.

Not called with a config file: :func:`localcast.control.db.migrate` builds the
Alembic config in code and passes its open connection in ``attributes``.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine

from localcast.control.models import Base

config = context.config
target_metadata = Base.metadata


def _run(connection: object) -> None:
    dialect = getattr(connection, "dialect", None)
    context.configure(
        connection=connection,  # type: ignore[arg-type]
        target_metadata=target_metadata,
        render_as_batch=getattr(dialect, "name", "") == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


connection = config.attributes.get("connection")
if connection is not None:
    _run(connection)
else:
    engine = create_engine(config.get_main_option("sqlalchemy.url") or "")
    with engine.begin() as conn:
        _run(conn)
