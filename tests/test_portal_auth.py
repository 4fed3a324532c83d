"""Portal accounts: login, lockout, sessions, CSRF, invitations, scope of the partner APIs."""

from __future__ import annotations

from pathlib import Path

import pytest
from portal_support import ALICE, BOB, OPERATOR, PASSWORD, Portal, csrf_of, login, portal_plane

from localcast.portal.accounts import LOCK_S, MAX_FAILED, AccountError
from localcast.portal.auth import COOKIE


@pytest.fixture
def portal(tmp_path: Path) -> Portal:
    return portal_plane(tmp_path)


def test_a_page_without_login_goes_to_the_login_form_and_back(portal: Portal) -> None:
    with portal.client() as c:
        r = c.get("/portal/operator/users?x=1", follow_redirects=False)
        assert r.status_code == 303
        assert r.headers["location"] == "/portal/login?next=%2Fportal%2Foperator%2Fusers%3Fx%3D1"
        r = c.post(
            "/portal/login",
            data={"email": OPERATOR, "password": PASSWORD, "next": "/portal/operator/users?x=1"},
            follow_redirects=False,
        )
        assert r.status_code == 303
        assert r.headers["location"] == "/portal/operator/users?x=1"
        cookie = r.headers["set-cookie"]
        assert f"{COOKIE}=" in cookie
        assert "HttpOnly" in cookie and "SameSite=lax" in cookie and "Path=/" in cookie
        assert "Secure" not in cookie  # plain HTTP here; over TLS it is set


def test_the_cookie_is_secure_over_tls(portal: Portal) -> None:
    with portal.client() as c:
        c.base_url = c.base_url.copy_with(scheme="https")
        r = c.post(
            "/portal/login", data={"email": ALICE, "password": PASSWORD}, follow_redirects=False
        )
        assert r.status_code == 303
        assert "Secure" in r.headers["set-cookie"]


def test_wrong_password_and_unknown_email_get_the_same_answer(portal: Portal) -> None:
    with portal.client() as c:
        a = c.post("/portal/login", data={"email": ALICE, "password": "wrong password!!"})
        b = c.post("/portal/login", data={"email": "nobody@x.example", "password": PASSWORD})
        assert a.status_code == b.status_code == 401
        assert "wrong email or password" in a.text and "wrong email or password" in b.text
        assert a.text.replace(ALICE, "") == b.text.replace("nobody@x.example", "")


def test_an_account_locks_after_repeated_wrong_passwords_then_opens(portal: Portal) -> None:
    acc = portal.accounts
    now = portal.clock()
    for _ in range(MAX_FAILED):
        with pytest.raises(AccountError, match="wrong email or password"):
            acc.login(BOB, "not the password", now)
    with pytest.raises(AccountError, match="locked"):
        acc.login(BOB, PASSWORD, now)  # even the right password
    assert acc.login(BOB, PASSWORD, now + LOCK_S + 1).user.partner == "isp-b"


def test_the_stored_password_is_an_argon2id_hash(portal: Portal) -> None:
    from sqlalchemy import select

    from localcast.control.models import PortalSession, PortalUser

    session = portal.accounts.login(ALICE, PASSWORD, portal.clock())
    with portal.plane.sessions() as s:
        stored = s.scalars(select(PortalUser.password_hash).where(PortalUser.email == ALICE)).one()
        tokens = list(s.scalars(select(PortalSession.token_hash)))
    assert stored.startswith("$argon2id$") and PASSWORD not in stored
    assert session.token not in tokens  # only its sha256 is kept


def test_sessions_expire_and_logout_ends_them(portal: Portal) -> None:
    with portal.client() as c:
        csrf = login(c, OPERATOR)
        assert c.get("/portal/login", follow_redirects=False).status_code == 303  # logged in
        assert c.get("/portal/operator/catalog", follow_redirects=False).status_code == 200
        r = c.post("/portal/logout", data={}, follow_redirects=False)
        assert r.status_code == 403  # logout is a form like any other: it needs the token
        r = c.post("/portal/logout", data={"csrf": csrf}, follow_redirects=False)
        assert r.status_code == 303 and r.headers["location"] == "/portal/login"
        assert c.get("/portal/operator/catalog", follow_redirects=False).status_code == 303
    with portal.client() as c:
        login(c, OPERATOR)
        portal.clock.advance(13 * 3600)
        assert c.get("/portal/operator/catalog", follow_redirects=False).status_code == 303


def test_a_csrf_token_of_another_session_is_refused(portal: Portal) -> None:
    with portal.client() as a, portal.client() as b:
        csrf_a = login(a, ALICE)
        login(b, BOB)
        r = b.post("/portal/logout", data={"csrf": csrf_a}, follow_redirects=False)
        assert r.status_code == 403
        assert "security token" in r.text


def test_login_from_another_site_is_refused(portal: Portal) -> None:
    with portal.client() as c:
        r = c.post(
            "/portal/login",
            data={"email": ALICE, "password": PASSWORD},
            headers={"Origin": "https://evil.example"},
            follow_redirects=False,
        )
        assert r.status_code == 403
        assert COOKIE not in r.headers.get("set-cookie", "")


def test_next_never_leaves_the_portal(portal: Portal) -> None:
    with portal.client() as c:
        r = c.post(
            "/portal/login",
            data={"email": ALICE, "password": PASSWORD, "next": "//evil.example/x"},
            follow_redirects=False,
        )
        assert r.headers["location"] == "/portal/"


def test_an_invitation_makes_a_partner_user_once(portal: Portal) -> None:
    invite = portal.accounts.invite("carol@isp-a.example", "partner", "isp-a", None, portal.clock())
    with portal.client() as c:
        assert c.get(f"/portal/invite/{invite.token}").status_code == 200
        r = c.post(f"/portal/invite/{invite.token}", data={"password": "short", "name": "Carol"})
        assert r.status_code == 422 and "at least 12" in r.text
        r = c.post(
            f"/portal/invite/{invite.token}",
            data={"password": "a long enough secret", "name": "Carol"},
            follow_redirects=False,
        )
        assert r.status_code == 303
        assert COOKIE in r.headers["set-cookie"]
        assert c.get(f"/portal/invite/{invite.token}").status_code == 404  # used
    users = {u.email: u for u in portal.accounts.users()}
    assert users["carol@isp-a.example"].partner == "isp-a"


def test_invitations_check_the_role_and_partner(portal: Portal) -> None:
    now = portal.clock()
    with pytest.raises(AccountError, match="unknown partner"):
        portal.accounts.invite("x@y.example", "partner", "isp-zzz", None, now)
    with pytest.raises(AccountError, match="needs its partner"):
        portal.accounts.invite("x@y.example", "partner", None, None, now)
    with pytest.raises(AccountError, match="already has an account"):
        portal.accounts.invite(OPERATOR, "operator", None, None, now)
    expired = portal.accounts.invite("late@isp-b.example", "partner", "isp-b", None, now)
    assert portal.accounts.pending_invite(expired.token, now + 8 * 86400) is None


def test_the_csrf_helper_reads_the_token_of_this_session(portal: Portal) -> None:
    with portal.client() as c:
        token = login(c, OPERATOR)
        assert token == csrf_of(c)


def test_the_cli_adds_the_first_operator_and_invites_a_partner(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from localcast.cli import app as cli_app

    portal = portal_plane(tmp_path)  # the plane's home is tmp_path/home
    portal.plane.close()
    home = ["--home", str(tmp_path / "home")]
    run = CliRunner().invoke
    r = run(
        cli_app,
        [*home, "control", "user", "add", "root@op.example", "--password-file", "-"],
        input="a long operator password\n",
    )
    assert r.exit_code == 0, r.output
    assert "added operator root@op.example" in r.output
    r = run(
        cli_app,
        [*home, "control", "user", "add", "x@op.example", "--password-file", "-"],
        input="short\n",
    )
    assert r.exit_code == 2 and "at least 12 characters" in r.output
    r = run(
        cli_app,
        [
            *home,
            "control",
            "user",
            "invite",
            "eve@isp-b.example",
            "--partner",
            "isp-b",
            "--base-url",
            "https://portal.example",
        ],
    )
    assert r.exit_code == 0, r.output
    assert "https://portal.example/portal/invite/" in r.output
    r = run(cli_app, [*home, "control", "user", "list"])
    assert "root@op.example\toperator\t-\tactive" in r.output


def test_pages_are_not_cached_framed_or_open_to_other_scripts(portal: Portal) -> None:
    with portal.client() as c:
        r = c.get("/portal/login")
        assert r.headers["cache-control"] == "no-store"
        assert r.headers["x-frame-options"] == "DENY"
        csp = r.headers["content-security-policy"]
        assert "frame-ancestors 'none'" in csp and "script-src 'self'" in csp
        assert "form-action 'self'" in csp
