"""An appliance that lost its control plane finishes sessions in flight and admits no new one."""

from __future__ import annotations

import os
import time
from pathlib import Path

import httpx
import pytest
from appliance_support import TITLE, SampleStore, make_store

from localcast.appliance.admission import NO_NEW_SESSIONS, contact_state, in_flight
from localcast.appliance.launch import serve_in_thread
from localcast.appliance.settings import ApplianceSettings
from localcast.appliance.tokencache import TokenVerifier
from localcast.core.tokens import Keyring, fill_keyring, sign, signed_path
from localcast.devstack.procs import wait_until

TTL = 3600.0


def test_contact_state_and_in_flight() -> None:
    assert not contact_state(None, 1000.0, 300.0).lost  # no control plane ever: never lost
    assert not contact_state(900.0, 1000.0, 0.0).lost  # 0 disables
    fresh = contact_state(800.0, 1000.0, 300.0)
    assert not fresh.lost and fresh.lost_at is None and "200 s ago" in fresh.reason
    lost = contact_state(600.0, 1000.0, 300.0)
    assert lost.lost and lost.lost_at == 900.0 and "400 s" in lost.reason
    # issued (expiry - TTL) at or before the loss: in flight; after: new
    assert in_flight(900.0 + TTL, 900.0, TTL) and in_flight(100.0 + TTL, 900.0, TTL)
    assert not in_flight(901.0 + TTL, 900.0, TTL)


def test_verifier_refuses_new_sessions_only_while_lost() -> None:
    ring = Keyring("k1", {"k1": b"k" * 32})
    v = TokenVerifier(ring, ttl_s=60, session_ttl_s=TTL)
    path = (TITLE, "x.m4s")
    now = 10_000.0
    old = sign(ring, f"/{TITLE}", int(now - 500 + TTL))  # issued 500 s ago
    new = sign(ring, f"/{TITLE}", int(now + TTL))  # issued now
    fill = sign(fill_keyring(ring), f"/{TITLE}", int(now + TTL))
    assert v(new, path, now, None).ok  # cached "ok"...
    assert v.set_lost(now - 100) and not v.set_lost(now - 100)
    check = v(new, path, now, None)  # ...not reused: the mode changed the verdicts
    assert not check.ok and check.reason == NO_NEW_SESSIONS
    assert v(old, path, now, None).ok
    assert v(fill, path, now, None).ok  # peers still fill from it
    assert v.set_lost(None)
    assert v(new, path, now, None).ok


@pytest.fixture
def store(tmp_path: Path) -> SampleStore:
    return make_store(tmp_path)


def _get(url: str) -> httpx.Response:
    return httpx.get(url, timeout=5, trust_env=False)


def test_a_lost_control_plane_stops_new_sessions_and_recovers(
    store: SampleStore, tmp_path: Path
) -> None:
    contact = tmp_path / "run" / "control-contact"
    contact.parent.mkdir()
    contact.touch()
    settings = ApplianceSettings(
        store=store.root,
        keys=store.keys,
        port=0,
        workers=1,
        refresh_interval_s=0.1,
        contact_file=contact,
        control_lost_after_s=1.0,
        session_ttl_s=TTL,
    )
    name = store.names["small"]
    with serve_in_thread(settings, store.keyring) as app:

        def url(issued_at: float) -> str:
            return (
                app.url + signed_path(store.keyring, f"/{TITLE}", int(issued_at + TTL)) + "/" + name
            )

        def lost() -> bool:
            control: dict[str, object] = _get(app.url + "/healthz").json()["control"]
            return bool(control["lost"])

        started = time.time()
        # the last contact was 100 s ago (the loss declared 99 s ago): a session issued 200 s
        # ago is in flight, one issued now is new
        in_flight_url = url(started - 200)
        assert _get(url(started)).status_code == 200
        # the reporter stops reaching the control plane: its mark ages
        os.utime(contact, (started - 100, started - 100))
        wait_until(lost, "the appliance to notice", 5)
        refused = _get(url(time.time()))
        assert refused.status_code == 503 and "no new sessions" in refused.text
        served = _get(in_flight_url)
        assert served.status_code == 200 and served.content == store.content("small")
        # contact again: new sessions are admitted by themselves
        contact.touch()
        wait_until(lambda: not lost(), "the appliance to recover", 5)
        assert _get(url(time.time())).status_code == 200


def test_without_a_contact_mark_an_appliance_is_never_lost(
    store: SampleStore, tmp_path: Path
) -> None:
    settings = ApplianceSettings(
        store=store.root,
        keys=store.keys,
        port=0,
        workers=1,
        refresh_interval_s=0.1,
        contact_file=tmp_path / "nothing-here",
        control_lost_after_s=1.0,
    )
    with serve_in_thread(settings, store.keyring) as app:
        time.sleep(0.3)
        assert _get(app.url + "/healthz").json()["control"]["lost"] is False
        assert _get(app.url + store.path("small")).status_code == 200
