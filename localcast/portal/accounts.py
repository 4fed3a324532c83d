"""Portal accounts in the control plane's database: users, login sessions, invitations.

* A **user** is an operator (sees every partner) or a partner's user (one
  partner). Emails are stored lower-cased and are unique. Passwords are argon2id
  hashes (:mod:`.passwords`).
* A **login session** is a random 256-bit token in an HttpOnly cookie; the
  table keeps only its sha256, so a copy of the database logs nobody in. Each
  session carries its own CSRF token (the synchronizer-token pattern).
* **Lockout**: after ``MAX_FAILED`` wrong passwords in a row an account refuses
  logins for ``LOCK_S`` seconds (and says so), which bounds online guessing.
* An **invitation** is a one-time link (token sha256 stored) that creates a
  user with the role and partner the operator chose, once its holder sets a
  password; it expires after ``INVITE_TTL_S``.

Time is always the caller's ``now`` (unix seconds), never read here.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from localcast.control.models import Partner, PortalInvite, PortalSession, PortalUser, unix, utc
from localcast.portal.passwords import (
    DUMMY_HASH,
    hash_password,
    needs_rehash,
    verify_password,
)

ROLES = ("operator", "partner")
SESSION_TTL_S = 12 * 3600
INVITE_TTL_S = 7 * 86400
MAX_FAILED = 5
LOCK_S = 15 * 60


class AccountError(ValueError):
    """A request about accounts that cannot be done; ``field`` names the input at fault."""

    def __init__(self, reason: str, field: str | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.field = field


@dataclass(frozen=True)
class User:
    id: int
    email: str
    name: str
    role: str
    partner: str | None
    disabled: bool

    @property
    def is_operator(self) -> bool:
        return self.role == "operator"


@dataclass(frozen=True)
class LoginSession:
    token: str  # what the cookie carries (only its hash is stored)
    csrf: str
    user: User
    expires_at: float


@dataclass(frozen=True)
class Invite:
    token: str
    email: str
    role: str
    partner: str | None
    expires_at: float


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _user(row: PortalUser) -> User:
    return User(row.id, row.email, row.name, row.role, row.partner_id, row.disabled)


def normalise_email(email: str) -> str:
    email = email.strip().lower()
    local, at, domain = email.partition("@")
    if not at or not local or "." not in domain or len(email) > 254 or " " in email:
        raise AccountError(f"not an email address: {email!r}", field="email")
    return email


class AccountStore:
    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self._sessions = sessions

    # --- users ---------------------------------------------------------------------------------

    def _check_role(self, s: Session, role: str, partner: str | None) -> None:
        if role not in ROLES:
            raise AccountError(f"role must be one of {', '.join(ROLES)}", field="role")
        if role == "partner":
            if not partner:
                raise AccountError("a partner user needs its partner", field="partner")
            if s.get(Partner, partner) is None:
                raise AccountError(f"unknown partner {partner!r}", field="partner")
        elif partner:
            raise AccountError("an operator belongs to no partner", field="partner")

    def add_user(
        self,
        email: str,
        password: str,
        role: str,
        now: float,
        partner: str | None = None,
        name: str = "",
    ) -> User:
        email = normalise_email(email)
        try:
            digest = hash_password(password)
        except ValueError as exc:
            raise AccountError(str(exc), field="password") from exc
        with self._sessions.begin() as s:
            self._check_role(s, role, partner)
            row = PortalUser(
                email=email,
                name=name.strip()[:128],
                role=role,
                partner_id=partner if role == "partner" else None,
                password_hash=digest,
                created_at=utc(now),
                disabled=False,
                failed_logins=0,
            )
            s.add(row)
            try:
                s.flush()
            except IntegrityError as exc:
                raise AccountError(f"{email} already has an account", field="email") from exc
            return _user(row)

    def users(self, partner: str | None = None) -> list[User]:
        with self._sessions() as s:
            q = select(PortalUser).order_by(PortalUser.role, PortalUser.email)
            if partner is not None:
                q = q.where(PortalUser.partner_id == partner)
            return [_user(r) for r in s.scalars(q)]

    def set_password(self, user_id: int, password: str) -> None:
        try:
            digest = hash_password(password)
        except ValueError as exc:
            raise AccountError(str(exc), field="password") from exc
        with self._sessions.begin() as s:
            row = s.get(PortalUser, user_id)
            if row is None:
                raise AccountError("no such user")
            row.password_hash = digest
            row.failed_logins = 0
            row.locked_until = None
            s.execute(delete(PortalSession).where(PortalSession.user_id == user_id))

    def set_disabled(self, user_id: int, disabled: bool) -> None:
        with self._sessions.begin() as s:
            row = s.get(PortalUser, user_id)
            if row is None:
                raise AccountError("no such user")
            row.disabled = disabled
            if disabled:
                s.execute(delete(PortalSession).where(PortalSession.user_id == user_id))

    # --- login ---------------------------------------------------------------------------------

    def login(
        self, email: str, password: str, now: float, ttl_s: float = SESSION_TTL_S
    ) -> LoginSession:
        """A new login session, or AccountError with a reason that does not tell which of
        email and password was wrong."""
        wrong = AccountError("wrong email or password")
        try:
            email = normalise_email(email)
        except AccountError:
            verify_password(DUMMY_HASH, password)
            raise wrong from None
        refused: AccountError | None = None
        # the failure count must be committed, so refusals leave the transaction normally
        with self._sessions.begin() as s:
            row = s.scalars(select(PortalUser).where(PortalUser.email == email)).one_or_none()
            if row is None:
                verify_password(DUMMY_HASH, password)
                raise wrong
            locked = unix(row.locked_until)
            if locked is not None and locked > now:
                minutes = max(1, round((locked - now) / 60))
                raise AccountError(
                    f"too many wrong passwords: this account is locked for {minutes} more minutes"
                )
            if not verify_password(row.password_hash, password):
                row.failed_logins += 1
                if row.failed_logins >= MAX_FAILED:
                    row.failed_logins = 0
                    row.locked_until = utc(now + LOCK_S)
                refused = wrong
            elif row.disabled:
                refused = AccountError("this account is disabled")
            else:
                row.failed_logins = 0
                row.locked_until = None
                if needs_rehash(row.password_hash):
                    row.password_hash = hash_password(password)
                token, csrf = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
                s.add(
                    PortalSession(
                        token_hash=_digest(token),
                        user_id=row.id,
                        csrf=csrf,
                        created_at=utc(now),
                        expires_at=utc(now + ttl_s),
                    )
                )
                s.execute(delete(PortalSession).where(PortalSession.expires_at <= utc(now)))
                user = _user(row)
        if refused is not None:
            raise refused
        return LoginSession(token, csrf, user, now + ttl_s)

    def session(self, token: str, now: float) -> LoginSession | None:
        """The live session of a cookie's token (None: unknown, expired or user disabled)."""
        if not token or len(token) > 128:
            return None
        with self._sessions() as s:
            found = s.execute(
                select(PortalSession, PortalUser)
                .join(PortalUser, PortalUser.id == PortalSession.user_id)
                .where(PortalSession.token_hash == _digest(token))
            ).one_or_none()
            if found is None:
                return None
            sess, user = found
            expires = unix(sess.expires_at)
            assert expires is not None
            if expires <= now or user.disabled:
                return None
            return LoginSession(token, sess.csrf, _user(user), expires)

    def logout(self, token: str) -> None:
        with self._sessions.begin() as s:
            s.execute(delete(PortalSession).where(PortalSession.token_hash == _digest(token)))

    # --- invitations ---------------------------------------------------------------------------

    def invite(
        self, email: str, role: str, partner: str | None, by: int | None, now: float
    ) -> Invite:
        email = normalise_email(email)
        token = secrets.token_urlsafe(32)
        with self._sessions.begin() as s:
            self._check_role(s, role, partner)
            if s.scalars(select(PortalUser.id).where(PortalUser.email == email)).first():
                raise AccountError(f"{email} already has an account", field="email")
            s.add(
                PortalInvite(
                    token_hash=_digest(token),
                    email=email,
                    role=role,
                    partner_id=partner if role == "partner" else None,
                    created_by=by,
                    created_at=utc(now),
                    expires_at=utc(now + INVITE_TTL_S),
                )
            )
        return Invite(token, email, role, partner, now + INVITE_TTL_S)

    def pending_invite(self, token: str, now: float) -> Invite | None:
        if not token or len(token) > 128:
            return None
        with self._sessions() as s:
            row = s.get(PortalInvite, _digest(token))
            expires = unix(row.expires_at) if row is not None else None
            if row is None or row.used_at is not None or expires is None or expires <= now:
                return None
            return Invite(token, row.email, row.role, row.partner_id, expires)

    def accept_invite(self, token: str, password: str, name: str, now: float) -> User:
        invite = self.pending_invite(token, now)
        if invite is None:
            raise AccountError("this invitation is unknown, used or expired")
        user = self.add_user(invite.email, password, invite.role, now, invite.partner, name)
        with self._sessions.begin() as s:
            row = s.get(PortalInvite, _digest(token))
            if row is not None:
                row.used_at = utc(now)
        return user
