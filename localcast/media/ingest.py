"""Ingest: source file -> published title in the origin store (the pipeline's shell).

Order of work, cheapest check first, and nothing written before the source
is known good:

1. validate the title id and parameters; hash the source (sha256);
2. if the store already holds this title from the same source with the same
   parameters, stop ("already ingested"; a new name only rewrites the
   manifest);
3. probe (:mod:`probe`) and choose the ladder (:mod:`ladder`);
4. in a staging directory: transcode in one ffmpeg pass (:mod:`ffmpeg_cmd`,
   :mod:`transcode`), measure and content-address the output
   (:mod:`package`), assemble the manifest and render the playlists
   (:mod:`assemble`), then publish by rename (:mod:`origin`).

Every failure surfaces as one :class:`IngestError` with a one-line message.
"""

from __future__ import annotations

import hashlib
import logging
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from localcast.media.assemble import assemble_title
from localcast.media.ffmpeg_cmd import X264_PRESETS, TranscodeJob, transcode_command
from localcast.media.ladder import VideoRung, choose_ladder, ladder_fingerprint, output_frame_rate
from localcast.media.manifest import TITLE_ID_RE, TitleManifest
from localcast.media.mp4 import Mp4Error
from localcast.media.origin import OriginError, OriginStore
from localcast.media.package import PackagingError, package_outputs
from localcast.media.probe import ProbeError, SourceInfo, probe
from localcast.media.transcode import ProgressFn, TranscodeError, run_ffmpeg

log = logging.getLogger(__name__)

PIPELINE_VERSION = 1
"""Bump when the output for the same source and parameters changes."""


class IngestError(RuntimeError):
    """The ingest failed; the message is one line meant for the operator."""


@dataclass(frozen=True)
class IngestParams:
    """The knobs of an ingest (all of them part of the "same ingest?" check)."""

    segment_duration_s: float = 4.0
    max_height: int | None = None
    preset: str = "veryfast"

    def validate(self) -> None:
        if not 1.0 <= self.segment_duration_s <= 20.0:
            raise IngestError("segment duration must be between 1 and 20 seconds")
        if self.max_height is not None and self.max_height < 2:
            raise IngestError("max height must be at least 2")
        if self.preset not in X264_PRESETS:
            raise IngestError(f"unknown preset {self.preset!r} (one of {', '.join(X264_PRESETS)})")

    def fingerprint(self) -> dict[str, Any]:
        """Everything besides the source that determines the output (kept in ``extra``)."""
        return {
            "pipeline": PIPELINE_VERSION,
            "ladder": ladder_fingerprint(),
            "segment_duration_s": float(self.segment_duration_s),
            "max_height": self.max_height,
            "preset": self.preset,
        }


@dataclass(frozen=True)
class IngestResult:
    manifest: TitleManifest
    transcoded: bool  # False: the store already held this ingest
    elapsed_s: float


def ingest_extra(
    source: Path, info: SourceInfo, rungs: tuple[VideoRung, ...], params: IngestParams
) -> dict[str, Any]:
    """The manifest's ``extra``: parameters (for re-ingest detection) and provenance."""
    return {
        "params": params.fingerprint(),
        "source": {
            "file": source.name,
            "width": info.width,
            "height": info.height,
            "duration_s": info.duration_s,
            "frame_rate": str(info.frame_rate),
            "video_codec": info.video_codec,
            "has_audio": info.has_audio,
        },
        "audio": "source" if info.has_audio else "generated-silence",
        "ladder": [asdict(r) for r in rungs],
        "packager": "ffmpeg-hls-fmp4",
    }


def is_same_ingest(existing: TitleManifest, source_sha256: str, params: IngestParams) -> bool:
    return (
        existing.source_sha256 == source_sha256
        and existing.extra.get("params") == params.fingerprint()
    )


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while block := f.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def _check_inputs(source: Path, title_id: str, name: str, params: IngestParams) -> None:
    if not TITLE_ID_RE.match(title_id):
        raise IngestError(f"invalid title id {title_id!r}: must match {TITLE_ID_RE.pattern}")
    if not name.strip() or any(c in name for c in "\r\n"):
        raise IngestError("the title name must be one non-empty line")
    params.validate()
    if not source.exists():
        raise IngestError(f"{source}: no such file")
    if not source.is_file():
        raise IngestError(f"{source}: not a regular file")


@dataclass(frozen=True)
class _Plan:
    """What one transcode-and-publish needs, decided before any file is written."""

    source: Path
    title_id: str
    name: str
    params: IngestParams
    info: SourceInfo
    rungs: tuple[VideoRung, ...]
    source_sha256: str


def _existing(store: OriginStore, title_id: str) -> TitleManifest | None:
    """The published manifest, or None (also when it is unreadable: it gets replaced)."""
    try:
        return store.manifest(title_id)
    except OriginError as exc:
        log.warning("replacing title %s: %s", title_id, exc)
        return None


def ingest(
    source: Path,
    title_id: str,
    name: str,
    store: OriginStore,
    params: IngestParams | None = None,
    progress: ProgressFn | None = None,
    ffmpeg: str = "ffmpeg",
    ffprobe: str = "ffprobe",
) -> IngestResult:
    """Ingest ``source`` as ``title_id`` into ``store`` (see the module docstring)."""
    started = time.monotonic()
    params = params or IngestParams()
    _check_inputs(source, title_id, name, params)
    try:
        source_sha256 = sha256_file(source)
        existing = _existing(store, title_id)
        if existing is not None and is_same_ingest(existing, source_sha256, params):
            if existing.name != name:
                existing = replace(existing, name=name)
                store.update_manifest(existing)
            return IngestResult(existing, False, time.monotonic() - started)
        info = probe(source, ffprobe)
        rungs = choose_ladder(info, params.max_height)
        log.info(
            "ingesting %s as %s: %dx%d %.1f s -> %s",
            source.name,
            title_id,
            info.width,
            info.height,
            info.duration_s,
            ", ".join(f"{r.width}x{r.height}" for r in rungs),
        )
        store.clean_staging()
        plan = _Plan(source, title_id, name, params, info, rungs, source_sha256)
        manifest = _transcode_and_publish(plan, store, progress, ffmpeg)
    except (ProbeError, TranscodeError, PackagingError, OriginError, Mp4Error) as exc:
        raise IngestError(str(exc)) from exc
    except OSError as exc:
        raise IngestError(f"I/O error: {exc}") from exc
    return IngestResult(manifest, True, time.monotonic() - started)


def _transcode_and_publish(
    plan: _Plan, store: OriginStore, progress: ProgressFn | None, ffmpeg: str
) -> TitleManifest:
    rate = output_frame_rate(plan.info)
    seg_s = plan.params.segment_duration_s
    with store.staging(plan.title_id) as staging:
        work, title_dir = staging / "work", staging / "title"
        work.mkdir()
        title_dir.mkdir()
        job = TranscodeJob(plan.source, plan.info, plan.rungs, seg_s, plan.params.preset, work)
        cmd = transcode_command(job, ffmpeg)
        run_ffmpeg(cmd, plan.info.duration_s, work / "ffmpeg.log", progress)
        tracks = package_outputs(work, title_dir, plan.rungs, float(rate), seg_s)
        extra = ingest_extra(plan.source, plan.info, plan.rungs, plan.params)
        manifest, files = assemble_title(
            plan.title_id, plan.name, seg_s, plan.source_sha256, tracks, extra
        )
        shortfall = plan.info.duration_s - manifest.duration_s
        if shortfall > max(0.5, 2 / float(rate)):
            raise IngestError(
                f"{plan.source}: truncated or corrupt source: decoded "
                f"{manifest.duration_s:.2f} s of {plan.info.duration_s:.2f} s"
            )
        for file_name, data in files.items():
            (title_dir / file_name).write_bytes(data)
        store.publish(title_dir, manifest)
    return manifest
