"""Child processes of a local stack, each in a process group of its own.

A *node* (the control plane; an appliance with its reporter) is one process
group: its first process leads a new group, the others join it, so
a node is stopped, or killed the way a power cut would, with one signal to
the group, workers forked by the appliance's supervisor included. Groups of
their own also keep the terminal's Ctrl-C (sent to the foreground group)
away from them: the process that started them decides how they stop.

Where util-linux's ``setpriv`` exists, children are started under
``setpriv --pdeathsig TERM`` so they are told to stop even when the process
that started them dies without cleaning up (SIGKILL), without a
``preexec_fn`` (unsafe with threads).

Output (stdout and stderr) of every process goes to its log file.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

_SETPRIV = shutil.which("setpriv")


class StartError(RuntimeError):
    """A process did not come up; the message holds the end of its log."""


@dataclass
class Proc:
    """One started process and where its output goes."""

    name: str
    popen: subprocess.Popen[bytes]
    log: Path
    pgid: int  # its process group: its own pid for a group leader
    log_offset: int = 0  # where this run's output starts in ``log`` (appended to)

    @property
    def pid(self) -> int:
        return self.popen.pid

    def running(self) -> bool:
        return self.popen.poll() is None

    def output(self) -> str:
        """What this process has written so far."""
        try:
            with self.log.open("rb") as fh:
                fh.seek(self.log_offset)
                return fh.read().decode(errors="replace")
        except OSError:
            return ""

    def log_tail(self, lines: int = 20) -> str:
        return "\n".join(self.output().splitlines()[-lines:])


def localcast_argv(home: Path, *args: str, log_level: str = "info") -> list[str]:
    """``python -m localcast --home HOME --log-level L ARGS...`` with this interpreter."""
    return [sys.executable, "-m", "localcast", "--home", str(home), "--log-level", log_level, *args]


def spawn(
    name: str,
    argv: Sequence[str],
    log: Path,
    *,
    group: int | None = None,
    cwd: Path | None = None,
    env: dict[str, str] | None = None,
) -> Proc:
    """Start ``argv`` with output to ``log``: leading a new process group, or joining ``group``."""
    log.parent.mkdir(parents=True, exist_ok=True)
    cmd = list(argv)
    if _SETPRIV is not None:
        cmd = [_SETPRIV, "--pdeathsig", "TERM", "--", *cmd]
    with log.open("ab") as out:
        offset = out.tell()
        popen = subprocess.Popen(
            cmd,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=cwd,
            env={**os.environ, **(env or {})},
            process_group=0 if group is None else group,
        )
    return Proc(name, popen, log, popen.pid if group is None else group, offset)


def wait_for_line(proc: Proc, pattern: re.Pattern[str], timeout_s: float = 30.0) -> re.Match[str]:
    """Wait until ``proc``'s log has a line matching ``pattern``; StartError if it dies first."""
    deadline = time.monotonic() + timeout_s
    while True:
        for line in proc.output().splitlines():
            m = pattern.search(line)
            if m:
                return m
        if not proc.running():
            raise StartError(f"{proc.name} exited ({proc.popen.returncode}):\n{proc.log_tail()}")
        if time.monotonic() > deadline:
            raise StartError(f"{proc.name} not ready after {timeout_s:g} s:\n{proc.log_tail()}")
        time.sleep(0.05)


def wait_until(check: Callable[[], bool], what: str, timeout_s: float = 30.0) -> None:
    """Poll ``check`` (exceptions count as "not yet") until true; TimeoutError naming ``what``."""
    deadline = time.monotonic() + timeout_s
    last: BaseException | None = None
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except Exception as exc:
            last = exc
        time.sleep(0.1)
    raise TimeoutError(f"timed out after {timeout_s:g} s waiting for {what}" + _why(last))


def _why(exc: BaseException | None) -> str:
    return f" (last error: {exc!r})" if exc is not None else ""


def signal_group(pgid: int, sig: signal.Signals) -> bool:
    """Send ``sig`` to process group ``pgid``; False if the group is gone."""
    try:
        os.killpg(pgid, sig)
    except ProcessLookupError:
        return False
    return True


def group_members(pgid: int) -> list[int]:
    """Live (not zombie) processes of group ``pgid``, from ``/proc`` (Linux)."""
    members = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat", "rb") as fh:
                fields = fh.read().rsplit(b")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid and fields[0] != b"Z":
            members.append(int(entry.name))
    return members


def kill_group(procs: Sequence[Proc], timeout_s: float = 5.0) -> None:
    """SIGKILL the group of ``procs`` (all in one group): an abrupt death, like a power cut.

    Returns once ``procs`` are reaped and nothing of the group runs any more
    (forked workers, which are not our children, included).
    """
    if not procs:
        return
    pgid = procs[0].pgid
    signal_group(pgid, signal.SIGKILL)
    for p in procs:
        p.popen.wait()
    deadline = time.monotonic() + timeout_s
    while group_members(pgid) and time.monotonic() < deadline:
        time.sleep(0.01)


def stop_groups(groups: Sequence[Sequence[Proc]], grace_s: float = 10.0) -> None:
    """SIGTERM every group, wait up to ``grace_s`` for all, then SIGKILL what is left.

    Each group is one node's processes (its leader first). A group is
    signalled even when its leader has exited, so forked workers that
    outlived it are stopped too.
    """
    live = [g for g in groups if g]
    for g in live:
        signal_group(g[0].pgid, signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    for g in live:
        for p in g:
            with contextlib.suppress(subprocess.TimeoutExpired):
                p.popen.wait(max(0.0, deadline - time.monotonic()))
    for g in live:
        signal_group(g[0].pgid, signal.SIGKILL)  # stragglers, and workers left by a dead parent
        for p in g:
            p.popen.wait()
    deadline = time.monotonic() + 5.0
    while any(group_members(g[0].pgid) for g in live) and time.monotonic() < deadline:
        time.sleep(0.01)


def child_pids(pid: int) -> set[int]:
    """The direct children of ``pid`` (read from /proc; a vanished entry is skipped)."""
    out = set()
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                out.add(int(entry))
    return out
