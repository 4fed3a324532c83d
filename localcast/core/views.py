"""Views and resume: where a profile stopped watching a title, and where to start again.

Two decisions, both pure:

* :func:`decide_view_write`: whether a reported playback offset replaces the
  stored one. Newest write wins. "Newest" is the client's ``client_time``
  (a timestamp or any sequence number increasing per profile) when both the
  stored and the new write carry one, else the server's receive time. A
  stale write is not an error: it is answered with the stored view and the
  reason it was ignored. Offsets are clamped to ``[0, duration]``.
* :func:`resume_point`: where playback resumes: the start of the segment
  that contains the stored offset (so the player's first request is a whole
  segment), or 0 when nothing is stored or the title was watched to at least
  95 %.
"""

from __future__ import annotations

from dataclasses import dataclass

from localcast.media.manifest import TitleManifest

FINISHED_RATIO = 0.95


@dataclass(frozen=True)
class ViewRecord:
    profile_id: str
    title_id: str
    offset_s: float
    platform: str
    client_time: float | None
    updated_at: float  # server receive time of the write that set it


@dataclass(frozen=True)
class ViewWrite:
    offset_s: float
    platform: str
    client_time: float | None
    received_at: float


@dataclass(frozen=True)
class ViewVerdict:
    applied: bool
    record: ViewRecord
    reason: str


@dataclass(frozen=True)
class Resume:
    offset_s: float
    reason: str


def clamp_offset(offset_s: float, duration_s: float) -> float:
    return min(max(offset_s, 0.0), max(duration_s, 0.0))


def decide_view_write(
    existing: ViewRecord | None,
    write: ViewWrite,
    profile_id: str,
    title_id: str,
    duration_s: float,
) -> ViewVerdict:
    """Whether ``write`` replaces ``existing``, and the record that results."""
    offset = clamp_offset(write.offset_s, duration_s)
    candidate = ViewRecord(
        profile_id, title_id, offset, write.platform, write.client_time, write.received_at
    )
    clamped = "" if offset == write.offset_s else f" (clamped from {write.offset_s:g} s)"
    if existing is None:
        return ViewVerdict(True, candidate, f"first view recorded at {offset:g} s{clamped}")
    if write.client_time is not None and existing.client_time is not None:
        if write.client_time < existing.client_time:
            return ViewVerdict(
                False,
                existing,
                f"stale: client_time {write.client_time:g} is older than the stored "
                f"{existing.client_time:g}",
            )
        return ViewVerdict(True, candidate, f"newer client_time: offset {offset:g} s{clamped}")
    if write.received_at < existing.updated_at:
        return ViewVerdict(
            False, existing, "stale: received before the stored write (server clock)"
        )
    return ViewVerdict(True, candidate, f"newest by receive time: offset {offset:g} s{clamped}")


def resume_point(offset_s: float | None, manifest: TitleManifest) -> Resume:
    """Where to resume ``manifest``'s title for a stored ``offset_s`` (None: never watched)."""
    if offset_s is None:
        return Resume(0.0, "no view recorded: start from the beginning")
    duration = manifest.duration_s
    if duration > 0 and offset_s >= FINISHED_RATIO * duration:
        return Resume(
            0.0,
            f"finished: watched {offset_s:g} of {duration:g} s (>= {FINISHED_RATIO:.0%}), "
            "start over",
        )
    video = manifest.video
    if not video or not video[0].segments:
        return Resume(0.0, "title has no video segments: start from the beginning")
    segment = video[0].segment_at(max(offset_s, 0.0))
    return Resume(
        segment.start_s,
        f"resume at the start of segment {segment.index} ({segment.start_s:g} s) "
        f"holding {offset_s:g} s",
    )
