"""The playback model: playhead, buffer, startup, stalls (rebuffers). Pure.

A viewer's session as a small state machine driven by two events, both with
``now`` passed in (seconds on the player's clock):

* time passes (:func:`advance`): while playing the playhead moves at 1 media
  second per clock second until it reaches the end of what is buffered (a
  stall, timed exactly when the buffer ran dry, not when it was noticed) or the
  end point (the session ends);
* media arrives (:func:`buffered`): the contiguous buffer ahead of the
  playhead now reaches ``until_s``. Startup happens when ``startup_buffer_s``
  is buffered ahead of the start point; a stall ends when ``resume_buffer_s``
  is (either is capped by what is left to play).

Phases::

    STARTUP --enough buffered--> PLAYING --buffer ran dry--> STALLED
                                    ^  |                         |
                                    |  '--reached end--> ENDED   |
                                    '-------enough buffered------'
    (any) --stop--> ENDED

Conservation holds at every instant of a started session::

    now - requested_at = startup_time + media played + rebuffer time

This module knows nothing about segments, HTTP or renditions.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from enum import StrEnum


class Phase(StrEnum):
    STARTUP = "startup"
    PLAYING = "playing"
    STALLED = "stalled"
    ENDED = "ended"


@dataclass(frozen=True)
class Playback:
    phase: Phase
    now_s: float  # clock time of the last update
    position_s: float  # the playhead, in media seconds
    buffered_until_s: float  # media is buffered contiguously from the playhead to here
    start_s: float
    end_s: float  # where playback ends: the title's duration or a stop point
    startup_buffer_s: float
    resume_buffer_s: float
    requested_at_s: float  # when the viewer asked to play
    started_at_s: float | None = None  # first frame shown
    ended_at_s: float | None = None
    stall_count: int = 0
    stall_time_s: float = 0.0  # finished stalls only; see rebuffer_time_s
    stall_began_s: float | None = None

    @property
    def buffer_s(self) -> float:
        """Seconds of media buffered ahead of the playhead (up to the end point)."""
        return max(0.0, min(self.buffered_until_s, self.end_s) - self.position_s)

    @property
    def remaining_s(self) -> float:
        return max(0.0, self.end_s - self.position_s)

    @property
    def startup_time_s(self) -> float | None:
        if self.started_at_s is None:
            return None
        return self.started_at_s - self.requested_at_s

    def rebuffer_time_s(self) -> float:
        """Total stall time as of this state's clock, the ongoing stall included."""
        ongoing = 0.0 if self.stall_began_s is None else self.now_s - self.stall_began_s
        return self.stall_time_s + ongoing


def begin(
    now_s: float,
    start_s: float,
    end_s: float,
    startup_buffer_s: float,
    resume_buffer_s: float,
) -> Playback:
    """A session requested at ``now_s`` to play from ``start_s`` to ``end_s`` (media seconds)."""
    pb = Playback(
        phase=Phase.STARTUP,
        now_s=now_s,
        position_s=start_s,
        buffered_until_s=start_s,
        start_s=start_s,
        end_s=end_s,
        startup_buffer_s=max(0.0, startup_buffer_s),
        resume_buffer_s=max(0.0, resume_buffer_s),
        requested_at_s=now_s,
    )
    if end_s <= start_s:
        return replace(pb, phase=Phase.ENDED, end_s=start_s, ended_at_s=now_s)
    return pb


def advance(pb: Playback, now_s: float) -> Playback:
    """Let the clock run to ``now_s`` (an earlier ``now_s`` changes nothing)."""
    if now_s <= pb.now_s:
        return pb
    if pb.phase is not Phase.PLAYING:
        return replace(pb, now_s=now_s)
    limit = min(pb.buffered_until_s, pb.end_s)
    dt = now_s - pb.now_s
    if pb.position_s + dt < limit:
        return replace(pb, now_s=now_s, position_s=pb.position_s + dt)
    hit_at = pb.now_s + (limit - pb.position_s)
    if limit >= pb.end_s:
        return replace(pb, phase=Phase.ENDED, now_s=now_s, position_s=pb.end_s, ended_at_s=hit_at)
    return replace(
        pb,
        phase=Phase.STALLED,
        now_s=now_s,
        position_s=limit,
        stall_count=pb.stall_count + 1,
        stall_began_s=hit_at,
    )


def buffered(pb: Playback, until_s: float, now_s: float) -> Playback:
    """Media up to ``until_s`` (contiguous from the playhead) arrived at ``now_s``."""
    pb = advance(pb, now_s)
    if pb.phase is Phase.ENDED:
        return pb
    pb = replace(pb, buffered_until_s=max(pb.buffered_until_s, until_s))
    if pb.phase is Phase.STARTUP and pb.buffer_s >= min(pb.startup_buffer_s, pb.remaining_s):
        return replace(pb, phase=Phase.PLAYING, started_at_s=pb.now_s)
    if pb.phase is Phase.STALLED and pb.buffer_s >= min(pb.resume_buffer_s, pb.remaining_s):
        began = pb.stall_began_s if pb.stall_began_s is not None else pb.now_s
        return replace(
            pb,
            phase=Phase.PLAYING,
            stall_time_s=pb.stall_time_s + (pb.now_s - began),
            stall_began_s=None,
        )
    return pb


def stop(pb: Playback, now_s: float) -> Playback:
    """The viewer (or the player, giving up) stops at ``now_s``."""
    pb = advance(pb, now_s)
    if pb.phase is Phase.ENDED:
        return pb
    stall_time = pb.rebuffer_time_s()
    return replace(
        pb,
        phase=Phase.ENDED,
        ended_at_s=pb.now_s,
        stall_time_s=stall_time,
        stall_began_s=None,
    )


def media_time_until(pb: Playback, position_s: float) -> float | None:
    """Clock seconds until the playhead reaches ``position_s``, if it will without new media."""
    if pb.phase is not Phase.PLAYING:
        return None
    if position_s > min(pb.buffered_until_s, pb.end_s):
        return None
    return max(0.0, position_s - pb.position_s)
