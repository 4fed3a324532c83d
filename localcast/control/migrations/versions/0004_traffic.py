"""Traffic accounting: bytes served per day, partner, request kind, source kind and site;
playback decisions per day, partner, site and event.

Revision ID: 0004_traffic
Revises: 0003_health
Create Date: 2025-03-15
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004_traffic"
down_revision: str | None = "0003_health"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "traffic_daily",
        sa.Column("day", sa.Integer(), nullable=False),
        sa.Column("partner_id", sa.String(64), nullable=False),
        sa.Column("kind", sa.String(8), nullable=False),
        sa.Column("source_kind", sa.String(16), nullable=False),
        sa.Column("site_id", sa.String(64), nullable=False),
        sa.Column("requests", sa.BigInteger(), nullable=False),
        sa.Column("bytes", sa.BigInteger(), nullable=False),
        sa.Column("errors_5xx", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint(
            "day",
            "partner_id",
            "kind",
            "source_kind",
            "site_id",
            name=op.f("pk_traffic_daily"),
        ),
    )
    op.create_table(
        "steering_daily",
        sa.Column("day", sa.Integer(), nullable=False),
        sa.Column("partner_id", sa.String(64), nullable=False),
        sa.Column("site_id", sa.String(64), nullable=False),
        sa.Column("event", sa.String(16), nullable=False),
        sa.Column("decisions", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint(
            "day", "partner_id", "site_id", "event", name=op.f("pk_steering_daily")
        ),
    )


def downgrade() -> None:
    op.drop_table("steering_daily")
    op.drop_table("traffic_daily")
