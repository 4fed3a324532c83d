"""Partner portal: users, login sessions, invitations, appliance requests.

Revision ID: 0005_portal
Revises: 0004_traffic
Create Date: 2025-03-20
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from localcast.control.models import UTCDateTime

revision: str = "0005_portal"
down_revision: str | None = "0004_traffic"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "portal_users",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("email", sa.String(254), nullable=False),
        sa.Column("name", sa.String(128), server_default="", nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("partner_id", sa.String(64), nullable=True),
        sa.Column("password_hash", sa.String(255), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("disabled", sa.Boolean(), nullable=False),
        sa.Column("failed_logins", sa.Integer(), nullable=False),
        sa.Column("locked_until", UTCDateTime(), nullable=True),
        sa.ForeignKeyConstraint(
            ["partner_id"],
            ["partners.id"],
            name=op.f("fk_portal_users_partner_id_partners"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_portal_users")),
        sa.UniqueConstraint("email", name=op.f("uq_portal_users_email")),
    )
    op.create_table(
        "portal_sessions",
        sa.Column("token_hash", sa.String(64), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("csrf", sa.String(64), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("expires_at", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["portal_users.id"],
            name=op.f("fk_portal_sessions_user_id_portal_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("token_hash", name=op.f("pk_portal_sessions")),
    )
    op.create_index(
        op.f("ix_portal_sessions_user_id"), "portal_sessions", ["user_id"], unique=False
    )
    op.create_table(
        "portal_invites",
        sa.Column("token_hash", sa.String(64), nullable=False),
        sa.Column("email", sa.String(254), nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("partner_id", sa.String(64), nullable=True),
        sa.Column("created_by", sa.Integer(), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("expires_at", UTCDateTime(), nullable=False),
        sa.Column("used_at", UTCDateTime(), nullable=True),
        sa.ForeignKeyConstraint(
            ["partner_id"],
            ["partners.id"],
            name=op.f("fk_portal_invites_partner_id_partners"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["created_by"],
            ["portal_users.id"],
            name=op.f("fk_portal_invites_created_by_portal_users"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("token_hash", name=op.f("pk_portal_invites")),
    )
    op.create_table(
        "appliance_requests",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("partner_id", sa.String(64), nullable=False),
        sa.Column("created_by", sa.Integer(), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("form", sa.JSON(), nullable=False),
        sa.Column("eligibility", sa.JSON(), nullable=True),
        sa.Column("decided_by", sa.Integer(), nullable=True),
        sa.Column("decided_at", UTCDateTime(), nullable=True),
        sa.Column("note", sa.String(2000), server_default="", nullable=False),
        sa.ForeignKeyConstraint(
            ["partner_id"],
            ["partners.id"],
            name=op.f("fk_appliance_requests_partner_id_partners"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["created_by"],
            ["portal_users.id"],
            name=op.f("fk_appliance_requests_created_by_portal_users"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["decided_by"],
            ["portal_users.id"],
            name=op.f("fk_appliance_requests_decided_by_portal_users"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_appliance_requests")),
    )
    op.create_index(
        op.f("ix_appliance_requests_partner_id"),
        "appliance_requests",
        ["partner_id"],
        unique=False,
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_appliance_requests_partner_id"), table_name="appliance_requests")
    op.drop_table("appliance_requests")
    op.drop_table("portal_invites")
    op.drop_index(op.f("ix_portal_sessions_user_id"), table_name="portal_sessions")
    op.drop_table("portal_sessions")
    op.drop_table("portal_users")
