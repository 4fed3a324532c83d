"""`localcast ingest`: a source video -> ABR ladder, CMAF, HLS + DASH, in the origin store."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeRemainingColumn

from localcast.cli.state import fail, state
from localcast.media.ingest import IngestError, IngestParams, ingest
from localcast.media.origin import DirectoryOriginStore
from localcast.media.transcode import ProgressFn


def register(app: typer.Typer) -> None:
    app.command("ingest")(ingest_cmd)


@contextmanager
def _progress_bar(enabled: bool, label: str) -> Iterator[ProgressFn | None]:
    """A rich progress bar on stderr fed with (done_s, total_s), or None when disabled."""
    if not enabled:
        yield None
        return
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        TaskProgressColumn(),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=Console(stderr=True), transient=True) as bar:
        task = bar.add_task(label, total=None)

        def update(done_s: float, total_s: float) -> None:
            bar.update(task, completed=done_s, total=total_s)

        yield update


def ingest_cmd(
    ctx: typer.Context,
    source: Annotated[Path, typer.Argument(help="Source video file (anything ffmpeg reads).")],
    title_id: Annotated[
        str, typer.Option("--title-id", help="Title id: letters, digits, . _ - (max 64).")
    ],
    name: Annotated[str, typer.Option("--name", help="Human-readable title name.")],
    segment_duration: Annotated[
        float, typer.Option("--segment-duration", help="Segment duration in seconds.")
    ] = 4.0,
    max_height: Annotated[
        int | None,
        typer.Option("--max-height", help="Skip ladder rungs taller than this (pixels)."),
    ] = None,
    preset: Annotated[
        str, typer.Option("--preset", help="libx264 preset (ultrafast ... veryslow).")
    ] = "veryfast",
    origin: Annotated[
        Path | None,
        typer.Option("--origin", help="Origin store directory (default: the home's paths.origin)."),
    ] = None,
) -> None:
    """Transcode SOURCE into an ABR ladder and publish it to the origin store.

    H.264 + AAC renditions (240p up to 1080p, never above the source), CMAF
    segments with aligned keyframes, HLS and DASH playlists, every file named
    by its sha256. Re-ingesting the same source with the same options does
    nothing. A source without audio gets a silent audio track.
    """
    st = state(ctx)
    store = DirectoryOriginStore(origin or st.config.paths.origin)
    params = IngestParams(segment_duration_s=segment_duration, max_height=max_height, preset=preset)
    show_bar = sys.stderr.isatty() and not st.log_json
    try:
        with _progress_bar(show_bar, f"transcoding {title_id}") as progress:
            result = ingest(source, title_id, name, store, params, progress)
    except IngestError as exc:
        raise fail(str(exc)) from exc
    m = result.manifest
    if not result.transcoded:
        typer.echo(f"{title_id}: already ingested ({store.title_dir(title_id)})")
        return
    rungs = ", ".join(f"{r.height}p" for r in m.video)
    typer.echo(
        f"{title_id}: {len(m.video)} video renditions ({rungs}) + audio, "
        f"{len(m.video[0].segments)} segments of {m.segment_duration_s:g} s, "
        f"{m.total_bytes / 1e6:.1f} MB in {result.elapsed_s:.1f} s -> {store.title_dir(title_id)}"
    )
