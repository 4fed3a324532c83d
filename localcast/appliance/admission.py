"""Losing the control plane: finish the sessions in flight, admit no new one. Pure.

An appliance serves whoever holds a valid token; tokens are minted by the
control plane, which also decides where viewers go from fleet health it only
knows through heartbeats. When the appliance cannot reach the control plane
for longer than ``lost_after_s`` (its reporter's last successful heartbeat is
older than that), what it knows may be stale (drained? removed? keys
rotated?), so it stops taking **new sessions** and lets the **in-flight**
ones finish: a player on a session started elsewhere moves to its next
pathway (503), a player already here keeps streaming. It recovers by itself
on the first fresh contact.

In flight or new, without shared state between worker processes: a
session's tokens expire ``session_ttl_s`` after the control plane issued the
session (the control plane's ``[control] session_ttl_s``; the appliance is
configured with the same value), so a token's issue time is its expiry minus
that TTL. A session is in flight when it was issued before the appliance
declared the loss (``last contact + lost_after_s``). Fill requests (fill
credential) are not sessions and are always admitted.

The reporter's contact mark is a file whose modification time is the last
successful heartbeat; no file means no control plane was ever configured for
this data plane (a standalone appliance), which is never "lost".
"""

from __future__ import annotations

from dataclasses import dataclass

NO_NEW_SESSIONS = "no new sessions: this appliance lost contact with its control plane"


@dataclass(frozen=True)
class ContactState:
    """Whether the control plane is lost, since when (``lost_at``), and a sentence."""

    lost: bool
    lost_at: float | None
    reason: str


def contact_state(last_contact: float | None, now: float, lost_after_s: float) -> ContactState:
    """From the last successful contact (None: never configured) and ``now``."""
    if last_contact is None or lost_after_s <= 0:
        return ContactState(False, None, "no control plane contact to watch")
    silent = now - last_contact
    if silent <= lost_after_s:
        return ContactState(False, None, f"control plane reached {silent:.0f} s ago")
    return ContactState(
        True,
        last_contact + lost_after_s,
        f"control plane not reached for {silent:.0f} s (over {lost_after_s:g} s): "
        "finishing sessions in flight, admitting no new one",
    )


def in_flight(token_expires_at: float, lost_at: float, session_ttl_s: float) -> bool:
    """A session whose token expires at ``token_expires_at`` was issued before ``lost_at``."""
    return token_expires_at - session_ttl_s <= lost_at
