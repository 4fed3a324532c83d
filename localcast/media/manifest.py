"""The title manifest: the one description of an ingested title that every part reads.

Ingest writes it; the origin store keeps it beside the files; the control
plane imports it into its catalog; fills copy the files it lists; players and
the simulator read renditions and segment sizes from it.

Every file of a title is content-addressed: its name on disk and in URLs is
``<sha256>.<ext>`` (``mp4`` init segment, ``m4s`` media segment, ``m3u8``
playlist, ``mpd`` DASH manifest). Playlists refer to the files of the same
title by those names, relatively, so a title directory can be served from any
host under any (token) prefix.

Pure data: (de)serialisation and validation only.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from typing import Any

SCHEMA_VERSION = 1
FILE_EXTENSIONS = ("mp4", "m4s", "m3u8", "mpd")
_SHA256_RE = re.compile(r"^[0-9a-f]{64}$")
TITLE_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


class ManifestError(ValueError):
    """A manifest is malformed; the message names the field."""


@dataclass(frozen=True)
class FileRef:
    """One content-addressed file of a title."""

    file_id: str
    ext: str
    size: int

    @property
    def name(self) -> str:
        return f"{self.file_id}.{self.ext}"


@dataclass(frozen=True)
class Segment:
    index: int
    start_s: float
    duration_s: float
    file: FileRef


@dataclass(frozen=True)
class Rendition:
    """One rung of the ladder (video) or the audio track."""

    id: str
    kind: str  # "video" | "audio"
    codec: str  # RFC 6381 codec string, e.g. avc1.64001f, mp4a.40.2
    bandwidth: int  # peak bits/s as advertised in playlists
    average_bandwidth: int
    init: FileRef
    playlist: FileRef
    segments: tuple[Segment, ...]
    width: int = 0
    height: int = 0
    frame_rate: float = 0.0
    channels: int = 0
    sample_rate: int = 0

    def segment_at(self, offset_s: float) -> Segment:
        """The segment that contains ``offset_s`` (clamped to the rendition)."""
        if not self.segments:
            raise ManifestError(f"rendition {self.id} has no segments")
        for seg in self.segments:
            if offset_s < seg.start_s + seg.duration_s:
                return seg
        return self.segments[-1]


@dataclass(frozen=True)
class TitleManifest:
    title_id: str
    name: str
    duration_s: float
    segment_duration_s: float
    source_sha256: str
    renditions: tuple[Rendition, ...]
    multivariant: FileRef  # HLS multivariant playlist (origin's static copy)
    mpd: FileRef  # DASH MPD referencing the same segments
    schema: int = SCHEMA_VERSION
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def video(self) -> tuple[Rendition, ...]:
        return tuple(r for r in self.renditions if r.kind == "video")

    @property
    def audio(self) -> tuple[Rendition, ...]:
        return tuple(r for r in self.renditions if r.kind == "audio")

    def files(self) -> Iterator[FileRef]:
        """Every file of the title, each once."""
        seen: set[str] = set()
        for ref in self._all_refs():
            if ref.file_id not in seen:
                seen.add(ref.file_id)
                yield ref

    def _all_refs(self) -> Iterator[FileRef]:
        yield self.multivariant
        yield self.mpd
        for r in self.renditions:
            yield r.init
            yield r.playlist
            for s in r.segments:
                yield s.file

    @property
    def total_bytes(self) -> int:
        return sum(f.size for f in self.files())

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: Any) -> TitleManifest:
        return _parse_manifest(data)


# --- parsing with field-named errors -------------------------------------------------


def _get(obj: Any, key: str, kind: type | tuple[type, ...], where: str) -> Any:
    if not isinstance(obj, dict):
        raise ManifestError(f"{where}: expected an object")
    if key not in obj:
        raise ManifestError(f"{where}.{key}: missing")
    value = obj[key]
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if kind is list and isinstance(value, tuple):  # to_json() output used without JSON
        value = list(value)
    if (isinstance(value, bool) and kind is not bool) or not isinstance(value, kind):
        raise ManifestError(f"{where}.{key}: expected {getattr(kind, '__name__', kind)}")
    return value


def _parse_file(obj: Any, where: str) -> FileRef:
    file_id = _get(obj, "file_id", str, where)
    ext = _get(obj, "ext", str, where)
    size = _get(obj, "size", int, where)
    if not _SHA256_RE.match(file_id):
        raise ManifestError(f"{where}.file_id: not a sha256 hex digest")
    if ext not in FILE_EXTENSIONS:
        raise ManifestError(f"{where}.ext: must be one of {', '.join(FILE_EXTENSIONS)}")
    if size < 0:
        raise ManifestError(f"{where}.size: negative")
    return FileRef(file_id=file_id, ext=ext, size=size)


def _parse_rendition(obj: Any, where: str) -> Rendition:
    kind = _get(obj, "kind", str, where)
    if kind not in ("video", "audio"):
        raise ManifestError(f"{where}.kind: must be video or audio")
    segs_raw = _get(obj, "segments", list, where)
    segments = []
    for i, s in enumerate(segs_raw):
        sw = f"{where}.segments[{i}]"
        segments.append(
            Segment(
                index=_get(s, "index", int, sw),
                start_s=_get(s, "start_s", float, sw),
                duration_s=_get(s, "duration_s", float, sw),
                file=_parse_file(_get(s, "file", dict, sw), sw + ".file"),
            )
        )
    opt = obj if isinstance(obj, dict) else {}
    return Rendition(
        id=_get(obj, "id", str, where),
        kind=kind,
        codec=_get(obj, "codec", str, where),
        bandwidth=_get(obj, "bandwidth", int, where),
        average_bandwidth=_get(obj, "average_bandwidth", int, where),
        init=_parse_file(_get(obj, "init", dict, where), where + ".init"),
        playlist=_parse_file(_get(obj, "playlist", dict, where), where + ".playlist"),
        segments=tuple(segments),
        width=int(opt.get("width", 0)),
        height=int(opt.get("height", 0)),
        frame_rate=float(opt.get("frame_rate", 0.0)),
        channels=int(opt.get("channels", 0)),
        sample_rate=int(opt.get("sample_rate", 0)),
    )


def _parse_manifest(data: Any) -> TitleManifest:
    where = "manifest"
    schema = _get(data, "schema", int, where)
    if schema != SCHEMA_VERSION:
        raise ManifestError(f"{where}.schema: unsupported version {schema}")
    title_id = _get(data, "title_id", str, where)
    if not TITLE_ID_RE.match(title_id):
        raise ManifestError(f"{where}.title_id: must match {TITLE_ID_RE.pattern}")
    renditions = tuple(
        _parse_rendition(r, f"{where}.renditions[{i}]")
        for i, r in enumerate(_get(data, "renditions", list, where))
    )
    if not any(r.kind == "video" for r in renditions):
        raise ManifestError(f"{where}.renditions: no video rendition")
    extra = data.get("extra", {})
    if not isinstance(extra, dict):
        raise ManifestError(f"{where}.extra: expected an object")
    return TitleManifest(
        title_id=title_id,
        name=_get(data, "name", str, where),
        duration_s=_get(data, "duration_s", float, where),
        segment_duration_s=_get(data, "segment_duration_s", float, where),
        source_sha256=_get(data, "source_sha256", str, where),
        renditions=renditions,
        multivariant=_parse_file(_get(data, "multivariant", dict, where), where + ".multivariant"),
        mpd=_parse_file(_get(data, "mpd", dict, where), where + ".mpd"),
        schema=schema,
        extra=extra,
    )
