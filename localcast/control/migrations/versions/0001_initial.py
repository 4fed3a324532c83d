"""Initial control plane schema: fleet, catalog, profiles and views.

Revision ID: 0001_initial
Revises:
Create Date: 2025-01-01
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from localcast.control.models import UTCDateTime

revision: str = "0001_initial"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "control_meta",
        sa.Column("key", sa.String(64), nullable=False),
        sa.Column("value", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_control_meta")),
    )
    op.create_table(
        "partners",
        sa.Column("id", sa.String(64), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_partners")),
    )
    op.create_table(
        "partner_asns",
        sa.Column("partner_id", sa.String(64), nullable=False),
        sa.Column("asn", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["partner_id"],
            ["partners.id"],
            name=op.f("fk_partner_asns_partner_id_partners"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("partner_id", "asn", name=op.f("pk_partner_asns")),
    )
    op.create_table(
        "sites",
        sa.Column("id", sa.String(64), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("partner_id", sa.String(64), nullable=True),
        sa.Column("lat", sa.Float(), nullable=False),
        sa.Column("lon", sa.Float(), nullable=False),
        sa.Column("tz", sa.String(64), nullable=False),
        sa.ForeignKeyConstraint(
            ["partner_id"], ["partners.id"], name=op.f("fk_sites_partner_id_partners")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sites")),
    )
    op.create_table(
        "site_prefixes",
        sa.Column("site_id", sa.String(64), nullable=False),
        sa.Column("prefix", sa.String(64), nullable=False),
        sa.ForeignKeyConstraint(
            ["site_id"],
            ["sites.id"],
            name=op.f("fk_site_prefixes_site_id_sites"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("site_id", "prefix", name=op.f("pk_site_prefixes")),
    )
    op.create_table(
        "appliances",
        sa.Column("id", sa.String(64), nullable=False),
        sa.Column("site_id", sa.String(64), nullable=False),
        sa.Column("base_url", sa.String(255), nullable=False),
        sa.Column("disk_bytes", sa.BigInteger(), nullable=False),
        sa.Column("gbps", sa.Float(), nullable=False),
        sa.Column("drained", sa.Boolean(), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("credential_hash", sa.String(128), nullable=True),
        sa.Column("software", sa.String(64), nullable=True),
        sa.Column("registered_at", UTCDateTime(), nullable=True),
        sa.Column("heartbeat_interval_s", sa.Float(), nullable=False),
        sa.Column("last_heartbeat_at", UTCDateTime(), nullable=True),
        sa.Column("run_started_at", UTCDateTime(), nullable=True),
        sa.Column("beats_in_run", sa.Integer(), nullable=False),
        sa.Column("active_connections", sa.Integer(), nullable=False),
        sa.Column("egress_bps", sa.Float(), nullable=False),
        sa.Column("disk_used_bytes", sa.BigInteger(), nullable=False),
        sa.Column("disk_free_bytes", sa.BigInteger(), nullable=False),
        sa.Column("inventory_seq", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["site_id"], ["sites.id"], name=op.f("fk_appliances_site_id_sites")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_appliances")),
    )
    op.create_table(
        "appliance_inventory",
        sa.Column("appliance_id", sa.String(64), nullable=False),
        sa.Column("title_id", sa.String(64), nullable=False),
        sa.Column("files", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(
            ["appliance_id"],
            ["appliances.id"],
            name=op.f("fk_appliance_inventory_appliance_id_appliances"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("appliance_id", "title_id", name=op.f("pk_appliance_inventory")),
    )
    op.create_table(
        "titles",
        sa.Column("id", sa.String(64), nullable=False),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("duration_s", sa.Float(), nullable=False),
        sa.Column("segment_duration_s", sa.Float(), nullable=False),
        sa.Column("total_bytes", sa.BigInteger(), nullable=False),
        sa.Column("manifest", sa.JSON(), nullable=False),
        sa.Column("imported_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_titles")),
    )
    op.create_table(
        "title_files",
        sa.Column("title_id", sa.String(64), nullable=False),
        sa.Column("file_id", sa.String(64), nullable=False),
        sa.Column("ext", sa.String(8), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["title_id"],
            ["titles.id"],
            name=op.f("fk_title_files_title_id_titles"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("title_id", "file_id", name=op.f("pk_title_files")),
    )
    op.create_table(
        "profiles",
        sa.Column("id", sa.String(64), nullable=False),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_profiles")),
    )
    op.create_table(
        "views",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("profile_id", sa.String(64), nullable=False),
        sa.Column("title_id", sa.String(64), nullable=False),
        sa.Column("offset_s", sa.Float(), nullable=False),
        sa.Column("platform", sa.String(64), nullable=False),
        sa.Column("client_time", sa.Float(), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["profile_id"],
            ["profiles.id"],
            name=op.f("fk_views_profile_id_profiles"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["title_id"], ["titles.id"], name=op.f("fk_views_title_id_titles"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_views")),
        sa.UniqueConstraint("profile_id", "title_id", name=op.f("uq_views_profile_id")),
    )


def downgrade() -> None:
    for table in (
        "views",
        "profiles",
        "title_files",
        "titles",
        "appliance_inventory",
        "appliances",
        "site_prefixes",
        "sites",
        "partner_asns",
        "partners",
        "control_meta",
    ):
        op.drop_table(table)
