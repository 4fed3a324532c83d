"""Appliance requests in the control plane's database (table ``appliance_requests``).

A request's life: ``evaluating`` (the planner is answering) -> ``submitted``
(the answer is in; the operator decides) or ``failed`` (the planner could not
answer; the operator may still decide) -> ``approved`` or ``declined`` (with
the operator's note). Reads come back as :class:`ApplianceRequest` values with
the names of the users involved. Time is always the caller's ``now``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, aliased, sessionmaker

from localcast.control.errors import Conflict, NotFound
from localcast.control.models import ApplianceRequestRow, PortalUser, unix, utc

EVALUATING = "evaluating"
SUBMITTED = "submitted"
APPROVED = "approved"
DECLINED = "declined"
FAILED = "failed"
STATUSES = (EVALUATING, SUBMITTED, APPROVED, DECLINED, FAILED)
DECIDABLE = (SUBMITTED, FAILED)
MAX_NOTE = 2000


@dataclass(frozen=True)
class ApplianceRequest:
    id: int
    partner: str
    created_by: int | None
    created_by_name: str  # the user's name, else email; "" when the user is gone
    created_at: float
    status: str
    form: dict[str, Any]
    eligibility: dict[str, Any] | None
    decided_by: int | None
    decided_by_name: str
    decided_at: float | None
    note: str

    @property
    def decidable(self) -> bool:
        return self.status in DECIDABLE


def _name(u: PortalUser | None) -> str:
    return "" if u is None else (u.name or u.email)


class RequestStore:
    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self.sessions = sessions

    def _query(self, s: Session) -> Any:
        creator = aliased(PortalUser)
        decider = aliased(PortalUser)
        return (
            select(ApplianceRequestRow, creator, decider)
            .outerjoin(creator, creator.id == ApplianceRequestRow.created_by)
            .outerjoin(decider, decider.id == ApplianceRequestRow.decided_by)
        )

    @staticmethod
    def _out(
        row: ApplianceRequestRow, creator: PortalUser | None, decider: PortalUser | None
    ) -> ApplianceRequest:
        created = unix(row.created_at)
        assert created is not None
        return ApplianceRequest(
            id=row.id,
            partner=row.partner_id,
            created_by=row.created_by,
            created_by_name=_name(creator),
            created_at=created,
            status=row.status,
            form=dict(row.form),
            eligibility=None if row.eligibility is None else dict(row.eligibility),
            decided_by=row.decided_by,
            decided_by_name=_name(decider),
            decided_at=unix(row.decided_at),
            note=row.note,
        )

    def create(
        self,
        partner: str,
        created_by: int | None,
        form: dict[str, Any],
        now: float,
        status: str = EVALUATING,
    ) -> int:
        """A new request; its id."""
        with self.sessions.begin() as s:
            row = ApplianceRequestRow(
                partner_id=partner,
                created_by=created_by,
                created_at=utc(now),
                status=status,
                form=form,
                eligibility=None,
                note="",
            )
            s.add(row)
            s.flush()
            return row.id

    def get(self, request_id: int) -> ApplianceRequest | None:
        with self.sessions() as s:
            q = self._query(s).where(ApplianceRequestRow.id == request_id)
            found = s.execute(q).first()
            return None if found is None else self._out(*found)

    def list_for(self, partner: str | None) -> list[ApplianceRequest]:
        """A partner's requests (every partner's when None), newest first."""
        with self.sessions() as s:
            q = self._query(s)
            if partner is not None:
                q = q.where(ApplianceRequestRow.partner_id == partner)
            q = q.order_by(ApplianceRequestRow.created_at.desc(), ApplianceRequestRow.id.desc())
            return [self._out(*found) for found in s.execute(q).all()]

    def evaluating(self) -> list[int]:
        """Ids of the requests still waiting for the planner's answer."""
        with self.sessions() as s:
            q = select(ApplianceRequestRow.id).where(ApplianceRequestRow.status == EVALUATING)
            return list(s.scalars(q))

    def set_eligibility(
        self, request_id: int, eligibility: dict[str, Any], status: str = SUBMITTED
    ) -> bool:
        """The planner's answer (``status`` submitted, or failed with the error in it).
        False when the request is gone or no longer evaluating (nothing written)."""
        with self.sessions.begin() as s:
            row = s.get(ApplianceRequestRow, request_id)
            if row is None or row.status != EVALUATING:
                return False
            row.eligibility = eligibility
            row.status = status
            return True

    def decide(
        self, request_id: int, approve: bool, by: int, note: str, now: float
    ) -> ApplianceRequest:
        """The operator's decision; Conflict unless the request awaits one."""
        with self.sessions.begin() as s:
            row = s.get(ApplianceRequestRow, request_id)
            if row is None:
                raise NotFound("no such request")
            if row.status not in DECIDABLE:
                if row.status == EVALUATING:
                    raise Conflict("the planner has not answered yet: decide once it has")
                raise Conflict(f"this request is already {row.status}")
            row.status = APPROVED if approve else DECLINED
            row.decided_by = by
            row.decided_at = utc(now)
            row.note = note[:MAX_NOTE]
        found = self.get(request_id)
        assert found is not None
        return found
