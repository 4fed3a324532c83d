"""The control plane's tables, as typed SQLAlchemy 2.0 ORM classes.

Portable SQL only (SQLite and PostgreSQL): no dialect types, timestamps as
timezone-aware UTC (:class:`UTCDateTime` restores the zone SQLite drops),
JSON columns through SQLAlchemy's generic ``JSON``. The schema's history is
in ``migrations/``; a test checks the two agree.

Rows are storage only: the steering snapshot is built from them by
:mod:`localcast.control.snapshot`, and decisions never see an ORM object.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Dialect,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

ID = String(64)


class UTCDateTime(TypeDecorator[dt.datetime]):
    """A timezone-aware UTC datetime on every backend."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: dt.datetime | None, dialect: Dialect) -> Any:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        return value.astimezone(dt.UTC)

    def process_result_value(self, value: Any, dialect: Dialect) -> dt.datetime | None:
        if value is None:
            return None
        assert isinstance(value, dt.datetime)
        return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class Meta(Base):
    """Counters shared by every process on this database (e.g. the config generation)."""

    __tablename__ = "control_meta"
    key: Mapped[str] = mapped_column(ID, primary_key=True)
    value: Mapped[int] = mapped_column(BigInteger)


class Partner(Base):
    __tablename__ = "partners"
    id: Mapped[str] = mapped_column(ID, primary_key=True)


class PartnerAsn(Base):
    __tablename__ = "partner_asns"
    partner_id: Mapped[str] = mapped_column(
        ForeignKey("partners.id", ondelete="CASCADE"), primary_key=True
    )
    asn: Mapped[int] = mapped_column(BigInteger, primary_key=True)


class SiteRow(Base):
    __tablename__ = "sites"
    id: Mapped[str] = mapped_column(ID, primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))
    partner_id: Mapped[str | None] = mapped_column(ForeignKey("partners.id"), nullable=True)
    lat: Mapped[float] = mapped_column(Float)
    lon: Mapped[float] = mapped_column(Float)
    tz: Mapped[str] = mapped_column(String(64))
    region: Mapped[str | None] = mapped_column(ID, nullable=True)
    fill_window: Mapped[str] = mapped_column(String(32), server_default="02:00-14:00")


class SitePrefix(Base):
    __tablename__ = "site_prefixes"
    site_id: Mapped[str] = mapped_column(
        ForeignKey("sites.id", ondelete="CASCADE"), primary_key=True
    )
    prefix: Mapped[str] = mapped_column(String(64), primary_key=True)


class ApplianceRow(Base):
    __tablename__ = "appliances"
    id: Mapped[str] = mapped_column(ID, primary_key=True)
    site_id: Mapped[str] = mapped_column(ForeignKey("sites.id"))
    base_url: Mapped[str] = mapped_column(String(255))
    disk_bytes: Mapped[int] = mapped_column(BigInteger)
    gbps: Mapped[float] = mapped_column(Float)
    drained: Mapped[bool] = mapped_column(Boolean, default=False)
    state: Mapped[str] = mapped_column(String(16))
    credential_hash: Mapped[str | None] = mapped_column(String(128), nullable=True)
    software: Mapped[str | None] = mapped_column(String(64), nullable=True)
    registered_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    heartbeat_interval_s: Mapped[float] = mapped_column(Float)
    last_heartbeat_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    run_started_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    beats_in_run: Mapped[int] = mapped_column(Integer, default=0)
    active_connections: Mapped[int] = mapped_column(Integer, default=0)
    egress_bps: Mapped[float] = mapped_column(Float, default=0.0)
    disk_used_bytes: Mapped[int] = mapped_column(BigInteger, default=0)
    disk_free_bytes: Mapped[int] = mapped_column(BigInteger, default=0)
    inventory_seq: Mapped[int] = mapped_column(BigInteger, default=0)
    appliance_class: Mapped[str] = mapped_column(String(16), server_default="storage")
    fill_bps: Mapped[float | None] = mapped_column(Float, nullable=True)
    turned_up_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)


class InventoryRow(Base):
    """The files of one title an appliance holds (no FK: titles may be unknown yet)."""

    __tablename__ = "appliance_inventory"
    appliance_id: Mapped[str] = mapped_column(
        ForeignKey("appliances.id", ondelete="CASCADE"), primary_key=True
    )
    title_id: Mapped[str] = mapped_column(ID, primary_key=True)
    files: Mapped[list[str]] = mapped_column(JSON)


class TitleRow(Base):
    __tablename__ = "titles"
    id: Mapped[str] = mapped_column(ID, primary_key=True)
    name: Mapped[str] = mapped_column(String(255))
    duration_s: Mapped[float] = mapped_column(Float)
    segment_duration_s: Mapped[float] = mapped_column(Float)
    total_bytes: Mapped[int] = mapped_column(BigInteger)
    manifest: Mapped[dict[str, Any]] = mapped_column(JSON)
    imported_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)


class TitleFile(Base):
    __tablename__ = "title_files"
    title_id: Mapped[str] = mapped_column(
        ForeignKey("titles.id", ondelete="CASCADE"), primary_key=True
    )
    file_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    ext: Mapped[str] = mapped_column(String(8))
    size: Mapped[int] = mapped_column(BigInteger)


class Profile(Base):
    __tablename__ = "profiles"
    id: Mapped[str] = mapped_column(ID, primary_key=True)
    name: Mapped[str] = mapped_column(String(255))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)


class ViewRow(Base):
    """The seed's ``views`` table: where a profile stopped in a title."""

    __tablename__ = "views"
    __table_args__ = (UniqueConstraint("profile_id", "title_id"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    profile_id: Mapped[str] = mapped_column(ForeignKey("profiles.id", ondelete="CASCADE"))
    title_id: Mapped[str] = mapped_column(ForeignKey("titles.id", ondelete="CASCADE"))
    offset_s: Mapped[float] = mapped_column(Float)
    platform: Mapped[str] = mapped_column(String(64))
    client_time: Mapped[float | None] = mapped_column(Float, nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)


# --- proactive fill ------------------------------------------------------------------------------


class TitleRelease(Base):
    """A scheduled release: the title is placed before ``release_at`` (forecast boost)."""

    __tablename__ = "title_releases"
    title_id: Mapped[str] = mapped_column(
        ForeignKey("titles.id", ondelete="CASCADE"), primary_key=True
    )
    release_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    expected_sessions: Mapped[float] = mapped_column(Float)
    regions: Mapped[list[str] | None] = mapped_column(JSON, nullable=True)  # None: every region
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)


class DemandDaily(Base):
    """Playback sessions started per UTC day, popularity region and title (no FK: history)."""

    __tablename__ = "demand_daily"
    day: Mapped[int] = mapped_column(Integer, primary_key=True)
    region: Mapped[str] = mapped_column(ID, primary_key=True)
    title_id: Mapped[str] = mapped_column(ID, primary_key=True)
    sessions: Mapped[int] = mapped_column(BigInteger)
    bytes: Mapped[int] = mapped_column(BigInteger, server_default="0")


class FillManifestRow(Base):
    """What one appliance should hold: the latest versioned placement."""

    __tablename__ = "fill_manifests"
    appliance_id: Mapped[str] = mapped_column(
        ForeignKey("appliances.id", ondelete="CASCADE"), primary_key=True
    )
    version: Mapped[int] = mapped_column(Integer)
    titles: Mapped[list[str]] = mapped_column(JSON)
    day: Mapped[int] = mapped_column(Integer)
    generated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)


class FillStatusRow(Base):
    """The fill agent's last reported state (``filling``, ``idle``, ``alarm``, ...)."""

    __tablename__ = "fill_status"
    appliance_id: Mapped[str] = mapped_column(
        ForeignKey("appliances.id", ondelete="CASCADE"), primary_key=True
    )
    state: Mapped[str] = mapped_column(String(16))
    alarm: Mapped[str | None] = mapped_column(String(255), nullable=True)
    reported_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)


class FillTransfer(Base):
    """One file an appliance fetched, from where: the per-link byte accounting.

    Source site and kind are resolved when reported, so the record survives a
    topology change. A report retried after a lost answer is not stored twice
    (same appliance, file, source and completion time).
    """

    __tablename__ = "fill_transfers"
    __table_args__ = (
        UniqueConstraint("appliance_id", "title_id", "name", "source_id", "completed_at"),
        Index("ix_fill_transfers_site_id", "site_id"),
    )
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    appliance_id: Mapped[str] = mapped_column(ID)
    site_id: Mapped[str] = mapped_column(ID)
    title_id: Mapped[str] = mapped_column(ID)
    name: Mapped[str] = mapped_column(String(80))
    source_id: Mapped[str] = mapped_column(ID)
    source_site: Mapped[str] = mapped_column(ID)
    source_kind: Mapped[str] = mapped_column(String(16))
    bytes: Mapped[int] = mapped_column(BigInteger)
    completed_at: Mapped[float] = mapped_column(Float)
    reported_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)


# --- traffic accounting (see localcast.control.traffic) ------------------------------------------


class TrafficDaily(Base):
    """Bytes served per UTC day, client partner ('' = none), request kind, source kind and site.

    No FK: the history outlives partners and sites removed from the topology.
    """

    __tablename__ = "traffic_daily"
    day: Mapped[int] = mapped_column(Integer, primary_key=True)
    partner_id: Mapped[str] = mapped_column(ID, primary_key=True)
    kind: Mapped[str] = mapped_column(String(8), primary_key=True)  # viewer | fill
    source_kind: Mapped[str] = mapped_column(String(16), primary_key=True)
    site_id: Mapped[str] = mapped_column(ID, primary_key=True)
    requests: Mapped[int] = mapped_column(BigInteger)
    bytes: Mapped[int] = mapped_column(BigInteger)
    errors_5xx: Mapped[int] = mapped_column(BigInteger)


class SteeringDaily(Base):
    """Playback decisions per UTC day, client partner, site and event (outcome or passed over)."""

    __tablename__ = "steering_daily"
    day: Mapped[int] = mapped_column(Integer, primary_key=True)
    partner_id: Mapped[str] = mapped_column(ID, primary_key=True)
    site_id: Mapped[str] = mapped_column(ID, primary_key=True)
    event: Mapped[str] = mapped_column(String(16), primary_key=True)
    decisions: Mapped[int] = mapped_column(BigInteger)


# --- health --------------------------------------------------------------------------------------


class MaintenanceRow(Base):
    """An operator's drain or disable of one appliance (the latest; kept after it ends)."""

    __tablename__ = "appliance_maintenance"
    appliance_id: Mapped[str] = mapped_column(
        ForeignKey("appliances.id", ondelete="CASCADE"), primary_key=True
    )
    mode: Mapped[str] = mapped_column(String(16))
    since: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    until: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    reason: Mapped[str] = mapped_column(String(255), server_default="")


# --- partner portal ------------------------------------------------------------------------------


class PortalUser(Base):
    """A person who logs in to the portal: an operator, or a partner's user."""

    __tablename__ = "portal_users"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    email: Mapped[str] = mapped_column(String(254), unique=True)
    name: Mapped[str] = mapped_column(String(128), server_default="")
    role: Mapped[str] = mapped_column(String(16))
    partner_id: Mapped[str | None] = mapped_column(
        ForeignKey("partners.id", ondelete="CASCADE"), nullable=True
    )
    password_hash: Mapped[str] = mapped_column(String(255))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    disabled: Mapped[bool] = mapped_column(Boolean, default=False)
    failed_logins: Mapped[int] = mapped_column(Integer, default=0)
    locked_until: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)


class PortalSession(Base):
    """A login: the cookie carries the token, the table only its sha256."""

    __tablename__ = "portal_sessions"
    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[int] = mapped_column(
        ForeignKey("portal_users.id", ondelete="CASCADE"), index=True
    )
    csrf: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    expires_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)


class PortalInvite(Base):
    """An operator's invitation: a one-time link that lets its holder set a password."""

    __tablename__ = "portal_invites"
    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    email: Mapped[str] = mapped_column(String(254))
    role: Mapped[str] = mapped_column(String(16))
    partner_id: Mapped[str | None] = mapped_column(
        ForeignKey("partners.id", ondelete="CASCADE"), nullable=True
    )
    created_by: Mapped[int | None] = mapped_column(
        ForeignKey("portal_users.id", ondelete="SET NULL"), nullable=True
    )
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    expires_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    used_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)


class ApplianceRequestRow(Base):
    """A partner's request for appliances, the planner's answer and the operator's decision."""

    __tablename__ = "appliance_requests"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    partner_id: Mapped[str] = mapped_column(
        ForeignKey("partners.id", ondelete="CASCADE"), index=True
    )
    created_by: Mapped[int | None] = mapped_column(
        ForeignKey("portal_users.id", ondelete="SET NULL"), nullable=True
    )
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    status: Mapped[str] = mapped_column(String(16))
    form: Mapped[dict[str, Any]] = mapped_column(JSON)
    eligibility: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    decided_by: Mapped[int | None] = mapped_column(
        ForeignKey("portal_users.id", ondelete="SET NULL"), nullable=True
    )
    decided_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    note: Mapped[str] = mapped_column(String(2000), server_default="")


def utc(ts: float) -> dt.datetime:
    """Unix seconds -> aware UTC datetime (for storing)."""
    return dt.datetime.fromtimestamp(ts, dt.UTC)


def unix(value: dt.datetime | None) -> float | None:
    """Aware datetime -> unix seconds (for the core, which counts in seconds)."""
    return None if value is None else value.timestamp()
