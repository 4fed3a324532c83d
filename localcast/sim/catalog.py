"""The simulated catalog: title manifests (modelled, or a real catalog) as arrays.

A modelled title has the ladder of ``[catalog].renditions`` plus an audio track,
each rendition one media file covering the whole title (a single-file CMAF
rendition), so a title is a handful of content-addressed files with realistic
sizes (``mbps x duration``) instead of thousands of segments: placement,
fills and link counts work per file exactly as they would with segments.

A real catalog is a JSON list of title manifests (what the control plane
imports) or an origin directory (``<title>/manifest.json``).

Every array is indexed by title index: the catalog's title ids, sorted.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType

import numpy as np
import numpy.typing as npt

from localcast.core.fleet import CatalogTitle
from localcast.core.inventory import required_files
from localcast.media.manifest import (
    FileRef,
    ManifestError,
    Rendition,
    Segment,
    TitleManifest,
)
from localcast.sim.config import CatalogSpec, SimConfigError, title_id

KB = 1024
FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]


@dataclass(frozen=True, eq=False)
class SimCatalog:
    ids: tuple[str, ...]
    index: Mapping[str, int]
    entries: Mapping[str, CatalogTitle]  # what the snapshot's catalog holds
    sizes: IntArray  # bytes an appliance holds to serve the title (its required files)
    duration_s: FloatArray
    bitrates: FloatArray  # (titles, renditions) bits/s a session plays, audio included
    shares: FloatArray  # (renditions,) share of sessions per rendition column
    files: tuple[tuple[tuple[str, int], ...], ...]  # per title: (file name, size), required

    def __len__(self) -> int:
        return len(self.ids)


def _ref(title: str, label: str, ext: str, size: int) -> FileRef:
    sha = hashlib.sha256(f"localcast-sim/{title}/{label}".encode()).hexdigest()
    return FileRef(sha, ext, size)


def model_manifest(title: str, duration_s: float, spec: CatalogSpec) -> TitleManifest:
    """A modelled title: one file per rendition, sized by its bit rate and the duration."""

    def rendition(rid: str, kind: str, bps: float, height: int) -> Rendition:
        media = _ref(title, f"{rid}/media", "m4s", int(bps * duration_s / 8))
        return Rendition(
            id=rid,
            kind=kind,
            codec="avc1.64001f" if kind == "video" else "mp4a.40.2",
            bandwidth=int(bps * 1.25),
            average_bandwidth=int(bps),
            init=_ref(title, f"{rid}/init", "mp4", KB),
            playlist=_ref(title, f"{rid}/playlist", "m3u8", KB),
            segments=(Segment(0, 0.0, duration_s, media),),
            width=height * 16 // 9 if kind == "video" else 0,
            height=height if kind == "video" else 0,
            channels=2 if kind == "audio" else 0,
            sample_rate=48000 if kind == "audio" else 0,
        )

    renditions = [rendition(r.id, "video", r.mbps * 1e6, r.height) for r in spec.renditions]
    if spec.audio_kbps > 0:
        renditions.append(rendition("audio", "audio", spec.audio_kbps * 1e3, 0))
    return TitleManifest(
        title_id=title,
        name=f"Simulated {title}",
        duration_s=duration_s,
        segment_duration_s=duration_s,
        source_sha256="0" * 64,
        renditions=tuple(renditions),
        multivariant=_ref(title, "multivariant", "m3u8", KB),
        mpd=_ref(title, "mpd", "mpd", KB),
    )


def model_catalog(spec: CatalogSpec, seed: int) -> SimCatalog:
    """The catalog model: ``spec.titles`` titles with durations drawn from the seed."""
    rng = np.random.default_rng([seed, 0xCA7])
    lo, hi = spec.duration_minutes
    durations = rng.uniform(lo * 60.0, hi * 60.0, size=spec.titles)
    manifests = [model_manifest(title_id(i), float(d), spec) for i, d in enumerate(durations)]
    shares = np.array([r.share for r in spec.renditions], dtype=np.float64)
    return build_catalog(manifests, shares if shares.sum() > 0 else None)


def load_catalog_file(path: Path) -> list[TitleManifest]:
    """Title manifests from a JSON list or an origin directory (``<title>/manifest.json``)."""
    try:
        if path.is_dir():
            docs = [json.loads(p.read_text()) for p in sorted(path.glob("*/manifest.json"))]
        else:
            docs = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise SimConfigError(f"catalog.file: {path}: {exc}") from exc
    if isinstance(docs, dict) and isinstance(docs.get("titles"), list):
        docs = docs["titles"]
    if not isinstance(docs, list) or not docs:
        raise SimConfigError(f"catalog.file: {path}: expected a non-empty list of title manifests")
    out = []
    for i, doc in enumerate(docs):
        try:
            out.append(TitleManifest.from_json(doc))
        except ManifestError as exc:
            raise SimConfigError(f"catalog.file: {path}: [{i}] {exc}") from exc
    return out


def build_catalog(
    manifests: Sequence[TitleManifest], shares: FloatArray | None = None
) -> SimCatalog:
    """Arrays over ``manifests`` (sorted by title id); ``shares`` weigh the video renditions
    by position (default: equal)."""
    by_id = {m.title_id: m for m in manifests}
    if len(by_id) != len(manifests):
        raise SimConfigError("catalog: a title id is given twice")
    ids = tuple(sorted(by_id))
    entries: dict[str, CatalogTitle] = {}
    files: list[tuple[tuple[str, int], ...]] = []
    width = max(len(by_id[t].video) for t in ids)
    bitrates = np.zeros((len(ids), width), dtype=np.float64)
    for i, t in enumerate(ids):
        m = by_id[t]
        required = required_files(m)
        entries[t] = CatalogTitle(manifest=m, required_files=required)
        files.append(tuple((f.name, f.size) for f in m.files() if f.name in required))
        audio = float(m.audio[0].average_bandwidth) if m.audio else 0.0
        video = [float(r.average_bandwidth) + audio for r in m.video]
        bitrates[i, : len(video)] = video
        bitrates[i, len(video) :] = video[-1]  # fewer renditions: the top one stands in
    if shares is None or len(shares) != width:
        shares = np.full(width, 1.0 / width)
    sizes = np.fromiter((sum(s for _, s in f) for f in files), dtype=np.int64, count=len(ids))
    durations = np.array([by_id[t].duration_s for t in ids], dtype=np.float64)
    return SimCatalog(
        ids=ids,
        index=MappingProxyType({t: i for i, t in enumerate(ids)}),
        entries=MappingProxyType(entries),
        sizes=sizes,
        duration_s=durations,
        bitrates=bitrates,
        shares=shares / shares.sum(),
        files=tuple(files),
    )


def sim_catalog(spec: CatalogSpec, seed: int) -> SimCatalog:
    if spec.file is not None:
        return build_catalog(load_catalog_file(spec.file))
    return model_catalog(spec, seed)
