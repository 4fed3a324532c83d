"""Running ffmpeg: the transcode process, its progress feed and its failure (shell).

ffmpeg is started with ``-progress pipe:1`` (see
:func:`localcast.media.ffmpeg_cmd.transcode_command`): it prints ``key=value``
lines on stdout, of which ``out_time_us`` feeds the caller's progress
callback. stderr goes to a log file beside the work files (no pipe to
deadlock on); a failure raises :class:`TranscodeError` with its last line.
If the caller is interrupted, ffmpeg is killed before the exception goes on.
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Sequence
from pathlib import Path

ProgressFn = Callable[[float, float], None]
"""Called with (seconds transcoded, total seconds)."""


class TranscodeError(RuntimeError):
    """ffmpeg failed; the message is its last error line."""


def parse_progress(line: str) -> float | None:
    """Seconds of output from one ``-progress`` line (``out_time_us=...``), else None."""
    key, _, value = line.strip().partition("=")
    if key != "out_time_us":
        return None
    try:
        return max(0.0, int(value) / 1_000_000)
    except ValueError:
        return None  # "N/A" before the first frame


def _last_line(log_path: Path) -> str:
    try:
        lines = [ln.strip() for ln in log_path.read_text(errors="replace").splitlines()]
    except OSError:
        return ""
    lines = [ln for ln in lines if ln]
    return lines[-1] if lines else ""


def run_ffmpeg(
    cmd: Sequence[str],
    total_s: float,
    log_path: Path,
    progress: ProgressFn | None = None,
) -> None:
    """Run ``cmd`` to completion, reporting progress; raise TranscodeError on failure."""
    with log_path.open("wb") as log:
        try:
            proc = subprocess.Popen(
                list(cmd), stdout=subprocess.PIPE, stderr=log, stdin=subprocess.DEVNULL, text=True
            )
        except FileNotFoundError as exc:
            raise TranscodeError(f"{cmd[0]} is not installed") from exc
        try:
            assert proc.stdout is not None
            for line in proc.stdout:
                done = parse_progress(line)
                if done is not None and progress is not None:
                    progress(min(done, total_s), total_s)
            code = proc.wait()
        except BaseException:
            proc.kill()
            proc.wait()
            raise
    if code != 0:
        reason = _last_line(log_path) or f"exit status {code}"
        raise TranscodeError(f"ffmpeg failed: {reason}")
    if progress is not None:
        progress(total_s, total_s)
