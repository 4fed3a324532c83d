"""Health: the sticky turn-up time of each appliance, and drain / disable windows.

Appliances registered before turn-up checks existed count as turned up at
their registration (they were serving already: an upgrade must not take
them out of steering until probes pass).

Revision ID: 0003_health
Revises: 0002_fill
Create Date: 2025-03-01
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from localcast.control.models import UTCDateTime

revision: str = "0003_health"
down_revision: str | None = "0002_fill"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("appliances") as batch:
        batch.add_column(sa.Column("turned_up_at", UTCDateTime(), nullable=True))
    op.execute("UPDATE appliances SET turned_up_at = registered_at WHERE registered_at IS NOT NULL")
    op.create_table(
        "appliance_maintenance",
        sa.Column("appliance_id", sa.String(64), nullable=False),
        sa.Column("mode", sa.String(16), nullable=False),
        sa.Column("since", UTCDateTime(), nullable=False),
        sa.Column("until", UTCDateTime(), nullable=False),
        sa.Column("reason", sa.String(255), nullable=False, server_default=""),
        sa.ForeignKeyConstraint(
            ["appliance_id"],
            ["appliances.id"],
            name=op.f("fk_appliance_maintenance_appliance_id_appliances"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("appliance_id", name=op.f("pk_appliance_maintenance")),
    )


def downgrade() -> None:
    op.drop_table("appliance_maintenance")
    op.drop_column("appliances", "turned_up_at")
