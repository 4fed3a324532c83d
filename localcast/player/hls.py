"""HLS as the player sees it: playlists text -> small frozen dataclasses. Pure.

Parsing uses the ``m3u8`` package; this module adds what a steering-aware
player needs on top of it: ``PATHWAY-ID`` on variants and renditions (the
HLS default pathway is ``"."``), absolute URIs, device filtering, and one
pathway-independent ladder whose rungs know their URI on every pathway.

Variants are matched across pathways by their attributes (bandwidth,
resolution, codecs, frame rate): the HLS spec has every pathway carry the
same set of variant streams, only at different URIs. Audio renditions are
matched by name and language.

Nothing here does I/O.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urljoin

import m3u8

DEFAULT_PATHWAY = "."


class PlaylistError(ValueError):
    """A playlist is unusable for playback; the message says why."""


@dataclass(frozen=True)
class Variant:
    pathway_id: str
    uri: str  # absolute
    bandwidth: int
    average_bandwidth: int | None
    codecs: tuple[str, ...]
    width: int
    height: int
    frame_rate: float
    audio_group: str | None

    @property
    def match_key(self) -> tuple[Any, ...]:
        return (self.bandwidth, self.width, self.height, self.codecs, self.frame_rate)


@dataclass(frozen=True)
class AudioTrack:
    pathway_id: str
    group_id: str
    name: str
    language: str
    default: bool
    uri: str  # absolute

    @property
    def match_key(self) -> tuple[str, str]:
        return (self.name, self.language)


@dataclass(frozen=True)
class Multivariant:
    variants: tuple[Variant, ...]
    audio: tuple[AudioTrack, ...]
    steering_uri: str | None
    default_pathway: str | None
    start_offset_s: float | None

    @property
    def pathway_ids(self) -> tuple[str, ...]:
        """Pathways in the order the playlist first names them."""
        return tuple(dict.fromkeys(v.pathway_id for v in self.variants))


@dataclass(frozen=True)
class Rung:
    """One video rendition, whatever the pathway, with its audio track if any."""

    bandwidth: int
    width: int
    height: int
    codecs: tuple[str, ...]
    uris: Mapping[str, str]  # pathway id -> media playlist URI
    audio_uris: Mapping[str, str]  # pathway id -> audio media playlist URI

    @property
    def label(self) -> str:
        return f"{self.height}p@{self.bandwidth // 1000}k" if self.height else f"{self.bandwidth}"


@dataclass(frozen=True)
class Presentation:
    """What the player plays: an ascending ladder, and the pathways that serve all of it."""

    rungs: tuple[Rung, ...]
    pathways: tuple[str, ...]

    @property
    def has_audio(self) -> bool:
        return any(r.audio_uris for r in self.rungs)


@dataclass(frozen=True)
class MediaSegment:
    index: int
    start_s: float
    duration_s: float
    uri: str  # absolute

    @property
    def end_s(self) -> float:
        return self.start_s + self.duration_s


@dataclass(frozen=True)
class MediaPlaylist:
    init_uri: str | None
    segments: tuple[MediaSegment, ...]

    @property
    def duration_s(self) -> float:
        return self.segments[-1].end_s if self.segments else 0.0

    def index_at(self, t_s: float) -> int:
        """The index of the segment that contains media time ``t_s`` (clamped)."""
        if not self.segments:
            raise PlaylistError("media playlist has no segments")
        for seg in self.segments:
            if t_s < seg.end_s:
                return seg.index
        return self.segments[-1].index


def _unquote(value: Any) -> str | None:
    if value is None:
        return None
    return str(value).strip().strip('"')


def _codecs(value: str | None) -> tuple[str, ...]:
    return tuple(c.strip() for c in (value or "").split(",") if c.strip())


def parse_multivariant(text: str, base_url: str) -> Multivariant:
    """Parse a multivariant playlist fetched from ``base_url``."""
    try:
        doc = m3u8.loads(text)
    except Exception as exc:  # m3u8 raises assorted errors on malformed input
        raise PlaylistError(f"unparsable multivariant playlist: {exc}") from exc
    if not doc.is_variant:
        raise PlaylistError("not a multivariant playlist (no EXT-X-STREAM-INF)")
    variants = []
    for pl in doc.playlists:
        info = pl.stream_info
        width, height = info.resolution or (0, 0)
        variants.append(
            Variant(
                pathway_id=_unquote(getattr(info, "pathway_id", None)) or DEFAULT_PATHWAY,
                uri=urljoin(base_url, pl.uri),
                bandwidth=int(info.bandwidth or 0),
                average_bandwidth=int(info.average_bandwidth) if info.average_bandwidth else None,
                codecs=_codecs(info.codecs),
                width=int(width),
                height=int(height),
                frame_rate=float(info.frame_rate or 0.0),
                audio_group=_unquote(info.audio),
            )
        )
    audio = []
    for media in doc.media:
        if (media.type or "").upper() != "AUDIO" or not media.uri:
            continue
        extras = getattr(media, "extras", None) or {}
        pathway = _unquote(getattr(media, "pathway_id", None) or extras.get("pathway_id"))
        audio.append(
            AudioTrack(
                pathway_id=pathway or DEFAULT_PATHWAY,
                group_id=_unquote(media.group_id) or "",
                name=_unquote(media.name) or "",
                language=_unquote(media.language) or "",
                default=(media.default or "").upper() == "YES",
                uri=urljoin(base_url, media.uri),
            )
        )
    steering = doc.content_steering
    start = doc.start
    return Multivariant(
        variants=tuple(variants),
        audio=tuple(audio),
        steering_uri=urljoin(base_url, steering.uri) if steering and steering.uri else None,
        default_pathway=_unquote(steering.pathway_id) if steering else None,
        start_offset_s=float(start.time_offset)
        if start and start.time_offset is not None
        else None,
    )


def playable(variant: Variant, codecs: Sequence[str], max_height: int | None) -> bool:
    """Whether a device decoding ``codecs`` (``avc1``, ``mp4a``) up to ``max_height`` plays it."""
    families = {c.split(".")[0].lower() for c in codecs}
    if any(c.split(".")[0].lower() not in families for c in variant.codecs):
        return False
    return max_height is None or variant.height <= max_height


def _audio_for(mv: Multivariant, variant: Variant) -> AudioTrack | None:
    group = [a for a in mv.audio if a.group_id == variant.audio_group]
    if not group:
        return None
    return next((a for a in group if a.default), group[0])


def build_presentation(
    mv: Multivariant, codecs: Sequence[str], max_height: int | None
) -> Presentation:
    """The ladder this device can play, ascending, with each rung's URI on every pathway.

    Renditions are chosen on the first pathway; a pathway that lacks one of them
    is left out (it cannot serve the whole ladder).
    """
    pathways = mv.pathway_ids
    if not pathways:
        raise PlaylistError("multivariant playlist has no variants")
    first = pathways[0]
    candidates = [v for v in mv.variants if v.pathway_id == first and playable(v, codecs, None)]
    if not candidates:
        raise PlaylistError(f"no variant with codecs this device decodes ({', '.join(codecs)})")
    fitting = [v for v in candidates if max_height is None or v.height <= max_height]
    if not fitting:  # nothing is small enough: play the smallest rather than nothing
        fitting = [min(candidates, key=lambda v: (v.height, v.bandwidth))]
    by_rate: dict[int, Variant] = {}
    for v in sorted(fitting, key=lambda v: (v.bandwidth, v.height)):
        by_rate[v.bandwidth] = v  # one rung per bitrate: the tallest
    chosen = sorted(by_rate.values(), key=lambda v: v.bandwidth)

    rungs = []
    serving = set(pathways)
    for v in chosen:
        uris: dict[str, str] = {}
        audio_uris: dict[str, str] = {}
        first_audio = _audio_for(mv, v)
        for p in pathways:
            twin = next(
                (w for w in mv.variants if w.pathway_id == p and w.match_key == v.match_key),
                None,
            )
            if twin is None:
                serving.discard(p)
                continue
            uris[p] = twin.uri
            twin_audio = _audio_for(mv, twin)
            if first_audio is not None:
                if twin_audio is None or twin_audio.match_key != first_audio.match_key:
                    serving.discard(p)
                    continue
                audio_uris[p] = twin_audio.uri
        rungs.append(
            Rung(
                bandwidth=v.bandwidth,
                width=v.width,
                height=v.height,
                codecs=v.codecs,
                uris=uris,
                audio_uris=audio_uris,
            )
        )
    kept = tuple(p for p in pathways if p in serving)
    return Presentation(rungs=tuple(rungs), pathways=kept)


def parse_media_playlist(text: str, base_url: str) -> MediaPlaylist:
    """Parse a media playlist fetched from ``base_url``; segment times from EXTINF."""
    try:
        doc = m3u8.loads(text)
    except Exception as exc:
        raise PlaylistError(f"unparsable media playlist: {exc}") from exc
    if doc.is_variant:
        raise PlaylistError("expected a media playlist, got a multivariant one")
    segments = []
    start = 0.0
    init_uri: str | None = None
    for i, seg in enumerate(doc.segments):
        duration = float(seg.duration or 0.0)
        segments.append(MediaSegment(i, start, duration, urljoin(base_url, seg.uri)))
        start += duration
        if init_uri is None and seg.init_section is not None and seg.init_section.uri:
            init_uri = urljoin(base_url, seg.init_section.uri)
    if init_uri is None and doc.segment_map:
        init_uri = urljoin(base_url, doc.segment_map[0].uri)
    if not segments:
        raise PlaylistError("media playlist has no segments")
    return MediaPlaylist(init_uri=init_uri, segments=tuple(segments))
