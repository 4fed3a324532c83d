"""Title assembly: measured tracks -> :class:`TitleManifest` + playlist files (pure).

Packaging measures every output stream (codec from the init segment, exact
segment durations from the fragments, sizes and sha256 of every file) into
:class:`MeasuredTrack` values; this module turns them into renditions with
measured bandwidths, renders the HLS media playlists, the multivariant
playlist and the DASH MPD (content-addressing each rendered text), and
returns the manifest with the rendered files to write. No I/O.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

from localcast.media.dash import render_mpd
from localcast.media.hls import render_media_playlist, render_multivariant
from localcast.media.manifest import FileRef, Rendition, Segment, TitleManifest

_PLACEHOLDER = FileRef(file_id="0" * 64, ext="m3u8", size=0)


@dataclass(frozen=True)
class MeasuredSegment:
    file: FileRef
    start_s: float
    duration_s: float


@dataclass(frozen=True)
class MeasuredTrack:
    """One packaged output stream, as measured from its files."""

    rendition_id: str
    kind: str  # "video" | "audio"
    codec: str
    init: FileRef
    segments: tuple[MeasuredSegment, ...]
    width: int = 0
    height: int = 0
    frame_rate: float = 0.0
    channels: int = 0
    sample_rate: int = 0


def content_ref(data: bytes, ext: str) -> FileRef:
    """The content address of ``data``: ``<sha256>.<ext>``."""
    return FileRef(file_id=hashlib.sha256(data).hexdigest(), ext=ext, size=len(data))


def peak_bandwidth(segments: Sequence[MeasuredSegment], target_s: float) -> int:
    """HLS peak segment bit rate (bits/s).

    The largest bit rate of any run of consecutive segments lasting between
    0.5 and 1.5 target durations (RFC 8216bis 4.4.6.2); falls back to the
    largest single-segment rate when no run qualifies (very short titles).
    """
    best = 0.0
    for i in range(len(segments)):
        size = 0
        duration = 0.0
        for seg in segments[i:]:
            size += seg.file.size
            duration += seg.duration_s
            if duration > 1.5 * target_s:
                break
            if duration >= 0.5 * target_s:
                best = max(best, size * 8 / duration)
    if best == 0.0:
        rates = [s.file.size * 8 / s.duration_s for s in segments if s.duration_s > 0]
        best = max(rates, default=0.0)
    return math.ceil(best)


def average_bandwidth(segments: Sequence[MeasuredSegment]) -> int:
    """Total media-segment bits over total duration (bits/s)."""
    duration = sum(s.duration_s for s in segments)
    if duration <= 0:
        return 0
    return math.ceil(sum(s.file.size for s in segments) * 8 / duration)


def build_rendition(track: MeasuredTrack, target_s: float) -> Rendition:
    """The rendition of a track; its ``playlist`` is filled in by :func:`assemble_title`."""
    return Rendition(
        id=track.rendition_id,
        kind=track.kind,
        codec=track.codec,
        bandwidth=peak_bandwidth(track.segments, target_s),
        average_bandwidth=average_bandwidth(track.segments),
        init=track.init,
        playlist=_PLACEHOLDER,
        segments=tuple(
            Segment(index=i, start_s=s.start_s, duration_s=s.duration_s, file=s.file)
            for i, s in enumerate(track.segments)
        ),
        width=track.width,
        height=track.height,
        frame_rate=track.frame_rate,
        channels=track.channels,
        sample_rate=track.sample_rate,
    )


def assemble_title(
    title_id: str,
    name: str,
    segment_duration_s: float,
    source_sha256: str,
    tracks: Sequence[MeasuredTrack],
    extra: dict[str, Any],
) -> tuple[TitleManifest, dict[str, bytes]]:
    """The manifest and the rendered files (name -> bytes) the title still needs.

    Video renditions come first, lowest first, then audio. The manifest's
    ``duration_s`` is the longest video rendition's.
    """
    ordered = sorted(tracks, key=lambda t: (t.kind != "video", t.height, t.rendition_id))
    files: dict[str, bytes] = {}
    renditions = []
    for track in ordered:
        rendition = build_rendition(track, segment_duration_s)
        text = render_media_playlist(rendition).encode()
        ref = content_ref(text, "m3u8")
        files[ref.name] = text
        renditions.append(replace(rendition, playlist=ref))
    video_lengths = [sum(s.duration_s for s in t.segments) for t in ordered if t.kind == "video"]
    manifest = TitleManifest(
        title_id=title_id,
        name=name,
        duration_s=max(video_lengths, default=0.0),
        segment_duration_s=segment_duration_s,
        source_sha256=source_sha256,
        renditions=tuple(renditions),
        multivariant=_PLACEHOLDER,
        mpd=replace(_PLACEHOLDER, ext="mpd"),
        extra=extra,
    )
    multivariant = render_multivariant(manifest).encode()
    mpd = render_mpd(manifest).encode()
    mv_ref, mpd_ref = content_ref(multivariant, "m3u8"), content_ref(mpd, "mpd")
    files[mv_ref.name] = multivariant
    files[mpd_ref.name] = mpd
    return replace(manifest, multivariant=mv_ref, mpd=mpd_ref), files
