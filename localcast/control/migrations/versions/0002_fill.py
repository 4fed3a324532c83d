"""Proactive fill: site region and fill window, appliance class and fill rate, releases,
daily demand, fill manifests, fill agent status and transfers.

Revision ID: 0002_fill
Revises: 0001_initial
Create Date: 2025-02-01
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from localcast.control.models import UTCDateTime

revision: str = "0002_fill"
down_revision: str | None = "0001_initial"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("sites") as batch:
        batch.add_column(sa.Column("region", sa.String(64), nullable=True))
        batch.add_column(
            sa.Column("fill_window", sa.String(32), nullable=False, server_default="02:00-14:00")
        )
    with op.batch_alter_table("appliances") as batch:
        batch.add_column(
            sa.Column("appliance_class", sa.String(16), nullable=False, server_default="storage")
        )
        batch.add_column(sa.Column("fill_bps", sa.Float(), nullable=True))
    op.create_table(
        "title_releases",
        sa.Column("title_id", sa.String(64), nullable=False),
        sa.Column("release_at", UTCDateTime(), nullable=False),
        sa.Column("expected_sessions", sa.Float(), nullable=False),
        sa.Column("regions", sa.JSON(), nullable=True),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["title_id"],
            ["titles.id"],
            name=op.f("fk_title_releases_title_id_titles"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("title_id", name=op.f("pk_title_releases")),
    )
    op.create_table(
        "demand_daily",
        sa.Column("day", sa.Integer(), nullable=False),
        sa.Column("region", sa.String(64), nullable=False),
        sa.Column("title_id", sa.String(64), nullable=False),
        sa.Column("sessions", sa.BigInteger(), nullable=False),
        sa.Column("bytes", sa.BigInteger(), nullable=False, server_default="0"),
        sa.PrimaryKeyConstraint("day", "region", "title_id", name=op.f("pk_demand_daily")),
    )
    op.create_table(
        "fill_manifests",
        sa.Column("appliance_id", sa.String(64), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("titles", sa.JSON(), nullable=False),
        sa.Column("day", sa.Integer(), nullable=False),
        sa.Column("generated_at", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["appliance_id"],
            ["appliances.id"],
            name=op.f("fk_fill_manifests_appliance_id_appliances"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("appliance_id", name=op.f("pk_fill_manifests")),
    )
    op.create_table(
        "fill_status",
        sa.Column("appliance_id", sa.String(64), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("alarm", sa.String(255), nullable=True),
        sa.Column("reported_at", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["appliance_id"],
            ["appliances.id"],
            name=op.f("fk_fill_status_appliance_id_appliances"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("appliance_id", name=op.f("pk_fill_status")),
    )
    op.create_table(
        "fill_transfers",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("appliance_id", sa.String(64), nullable=False),
        sa.Column("site_id", sa.String(64), nullable=False),
        sa.Column("title_id", sa.String(64), nullable=False),
        sa.Column("name", sa.String(80), nullable=False),
        sa.Column("source_id", sa.String(64), nullable=False),
        sa.Column("source_site", sa.String(64), nullable=False),
        sa.Column("source_kind", sa.String(16), nullable=False),
        sa.Column("bytes", sa.BigInteger(), nullable=False),
        sa.Column("completed_at", sa.Float(), nullable=False),
        sa.Column("reported_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_fill_transfers")),
        sa.UniqueConstraint(
            "appliance_id",
            "title_id",
            "name",
            "source_id",
            "completed_at",
            name=op.f("uq_fill_transfers_appliance_id"),
        ),
    )
    op.create_index("ix_fill_transfers_site_id", "fill_transfers", ["site_id"])


def downgrade() -> None:
    op.drop_index("ix_fill_transfers_site_id", table_name="fill_transfers")
    for table in ("fill_transfers", "fill_status", "fill_manifests", "demand_daily"):
        op.drop_table(table)
    op.drop_table("title_releases")
    op.drop_column("appliances", "fill_bps")
    op.drop_column("appliances", "appliance_class")
    op.drop_column("sites", "fill_window")
    op.drop_column("sites", "region")
