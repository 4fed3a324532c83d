"""`localcast demo`, for real, as a subprocess (what `make demo` runs).

One full run: exit 0, the story's key lines, the QoE table, and no process
left behind. One interrupted run: Ctrl-C (SIGINT) while the title is being
ingested and the fleet is up: exit 130 and, again, no process left behind.
Nothing asserts on elapsed time.
"""

from __future__ import annotations

import os
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parent.parent
ENV = {**os.environ, "COLUMNS": "200", "PYTHONUNBUFFERED": "1"}  # no wrapped lines


def demo_argv(home: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "localcast", "demo", "--home", str(home), *extra]


def processes_mentioning(text: str) -> list[str]:
    """Command lines of live processes that mention ``text`` (the demo's directory)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            status = (entry / "status").read_text()
        except OSError:
            continue
        if text in cmdline and "State:\tZ" not in status:
            found.append(f"{entry.name}: {cmdline}")
    return found


def test_demo_runs_end_to_end(tmp_path: Path) -> None:
    home = tmp_path / "demo"
    run = subprocess.run(
        demo_argv(home),
        cwd=REPO,
        env=ENV,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    out = run.stdout
    assert run.returncode == 0, out + run.stderr
    for line in (
        "ingested demo: 240p, 360p, 480p, 720p + audio, 12 segments of 2 s",
        "ahead of release; origin-1 serves the origin store",
        "fill origin -> ix-ams (origin): ",
        "fill ix-ams -> isp-demo-par (tier): ",
        "fill isp-demo-par -> isp-demo-par (peer): ",
        "each file at most 1x",
        "players run 2x real time",
        "inside, stops halfway: alice plays from 127.0.1.10",
        "inside, stops halfway: ok (0.0 s -> 12.0 s, 0 rebuffers, 0 failovers)",
        "the control plane holds alice at 12.0 s",
        "inside, resumes + failover: ok (12.0 s -> 24.0 s, 0 rebuffers, 1 failovers)",
        "outside the ISP: ok (0.0 s -> 24.0 s",
        "QoE per playback session",
        "demo passed: every expectation held",
    ):
        assert line in out, f"missing {line!r} in:\n{out}"
    killed = next(line for line in out.splitlines() if "SIGKILL" in line)
    assert "SIGKILL oca-e1" in killed or "SIGKILL oca-e2" in killed
    victim, survivor = ("oca-e1", "oca-e2") if "SIGKILL oca-e1" in killed else ("oca-e2", "oca-e1")
    portal = next(line for line in out.splitlines() if "partner portal: isp-demo" in line)
    assert f"{survivor} OK" in portal and f"{victim} Error" in portal, portal
    assert "MB served by its embedded appliances" in portal
    assert "failover oca-e" in out
    table = out[out.index("QoE per playback session") :]
    assert "oca-ix1 (ix)" in table and "isp-demo-par" in table and "ix-ams" in table
    assert "FAILED" not in out
    assert processes_mentioning(str(home)) == []


def test_demo_interrupted_stops_everything(tmp_path: Path) -> None:
    home = tmp_path / "demo"
    proc = subprocess.Popen(
        demo_argv(home),
        cwd=REPO,
        env=ENV,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert proc.stdout is not None
    seen = []
    deadline = time.monotonic() + 120
    try:
        while time.monotonic() < deadline:  # until the whole fleet is up
            ready, _, _ = select.select([proc.stdout], [], [], 1.0)
            line = proc.stdout.readline() if ready else ""
            seen.append(line)
            if "appliance origin-1 at" in line or proc.poll() is not None:
                break
        assert "appliance origin-1 at" in seen[-1], "".join(seen)
        assert len(processes_mentioning(str(home))) > 8  # control + 4 x (serve, worker, reporter)
        proc.send_signal(signal.SIGINT)
        rest, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 130, "".join(seen) + rest
    assert "interrupted: every process stopped" in rest
    assert processes_mentioning(str(home)) == []
