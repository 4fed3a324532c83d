"""The parent process: reserve the port, fork the workers, restart any that die, stop them all.

The parent binds (but never listens on) a ``SO_REUSEPORT`` socket to hold the
port (and to learn it when port 0 was asked for); each worker binds and
listens on its own ``SO_REUSEPORT`` socket on that port, so the kernel
spreads connections across workers. The parent blocks SIGCHLD, SIGTERM and
SIGINT and waits for them with ``sigtimedwait`` (no handler races): a dead
worker is restarted (with back-off if it dies young), SIGTERM or SIGINT is
forwarded to the workers as SIGTERM, they drain, and the parent exits 0.
About once a second it publishes its metrics (workers, restarts).
"""

from __future__ import annotations

import contextlib
import logging
import os
import select
import signal
import time
from collections.abc import Callable
from dataclasses import replace

from localcast.appliance.metrics import SupervisorMetrics
from localcast.appliance.settings import ApplianceSettings
from localcast.appliance.worker import listen_socket, run_worker
from localcast.core.tokens import Keyring

log = logging.getLogger("localcast.appliance")

_SIGNALS = {signal.SIGCHLD, signal.SIGTERM, signal.SIGINT}
_STARTUP_TIMEOUT_S = 20.0
_YOUNG_S = 5.0  # a worker dying sooner than this is restarted with back-off
_MAX_BACKOFF_S = 5.0


class StartupError(RuntimeError):
    """The workers did not come up."""


class Supervisor:
    """Forks and tends ``settings.worker_count`` workers on one port."""

    def __init__(self, settings: ApplianceSettings, keyring: Keyring) -> None:
        self._reserve = listen_socket(settings.listen, settings.port, listen=False)
        port = self._reserve.getsockname()[1]
        self.settings = replace(settings, port=port)
        self.keyring = keyring
        self.workers: dict[int, int] = {}  # pid -> slot
        self._born: dict[int, float] = {}  # slot -> start time
        self._backoff: dict[int, float] = {}  # slot -> last back-off
        self._restart_at: dict[int, float] = {}  # slot -> when to respawn
        self._ready_r, self._ready_w = os.pipe()
        os.set_blocking(self._ready_r, False)
        self._old_mask: set[int | signal.Signals] = set()
        self.metrics = SupervisorMetrics(settings.metrics_dir)

    @property
    def url(self) -> str:
        host = self.settings.listen
        host = f"[{host}]" if ":" in host else host
        return f"http://{host}:{self.settings.port}"

    def run(self, announce: Callable[[str], None]) -> int:
        """Start the workers, call ``announce(url)`` once all listen, supervise until signalled."""
        self._old_mask = signal.pthread_sigmask(signal.SIG_BLOCK, _SIGNALS)
        try:
            for slot in range(self.settings.worker_count):
                self._spawn(slot)
            self._await_ready()
            announce(self.url)
            self._supervise()
            return 0
        except StartupError as exc:
            log.error("%s", exc)
            return 1
        finally:
            self._stop_all()
            self._reserve.close()
            os.close(self._ready_r)
            os.close(self._ready_w)
            signal.pthread_sigmask(signal.SIG_SETMASK, self._old_mask)

    # --- workers -------------------------------------------------------------------------

    def _spawn(self, slot: int) -> None:
        pid = os.fork()
        if pid == 0:  # the worker
            code = 1
            try:
                self._reserve.close()
                os.close(self._ready_r)
                signal.pthread_sigmask(signal.SIG_SETMASK, self._old_mask)
                code = run_worker(self.settings, self.keyring, self._ready_w)
            except BaseException:
                log.exception("worker crashed")
            finally:
                os._exit(code)
        self.workers[pid] = slot
        self._born[slot] = time.monotonic()
        log.debug("worker %d started (pid %d)", slot, pid)

    def _await_ready(self) -> None:
        want = len(self.workers)
        got = 0
        deadline = time.monotonic() + _STARTUP_TIMEOUT_S
        while got < want:
            left = deadline - time.monotonic()
            if left <= 0:
                raise StartupError("workers did not start in time")
            readable, _, _ = select.select([self._ready_r], [], [], min(left, 0.1))
            if readable:
                got += len(os.read(self._ready_r, 64))
            for sig in self._pending_signals():
                if sig in (signal.SIGTERM, signal.SIGINT):
                    raise StartupError("stopped while starting")
            for pid, status in self._reap():
                raise StartupError(f"worker pid {pid} exited while starting ({status})")

    def _supervise(self) -> None:
        next_metrics = 0.0
        while True:
            if time.monotonic() >= next_metrics:
                next_metrics = time.monotonic() + 1.0
                self.metrics.publish(len(self.workers))
            timeout = 1.0
            if self._restart_at:
                timeout = max(0.0, min(self._restart_at.values()) - time.monotonic())
            info = signal.sigtimedwait(_SIGNALS, min(timeout, 1.0))
            self._drain_ready()
            if info is not None and info.si_signo in (signal.SIGTERM, signal.SIGINT):
                log.info("appliance stopping (signal %d)", info.si_signo)
                return
            for pid, status in self._reap():
                slot = self.workers.pop(pid)
                lived = time.monotonic() - self._born.get(slot, 0.0)
                backoff = 0.0
                if lived < _YOUNG_S:
                    backoff = min(_MAX_BACKOFF_S, max(0.1, 2 * self._backoff.get(slot, 0.0)))
                self._backoff[slot] = backoff
                self._restart_at[slot] = time.monotonic() + backoff
                self.metrics.restarts += 1
                log.warning("worker %d (pid %d) exited (%s); restarting", slot, pid, status)
            now = time.monotonic()
            for slot, at in list(self._restart_at.items()):
                if at <= now:
                    del self._restart_at[slot]
                    self._spawn(slot)

    def _stop_all(self) -> None:
        for pid in list(self.workers):
            _kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + self.settings.shutdown_grace_s + 2.0
        while self.workers and time.monotonic() < deadline:
            signal.sigtimedwait({signal.SIGCHLD}, 0.1)
            for pid, _ in self._reap():
                self.workers.pop(pid, None)
        for pid in list(self.workers):
            _kill(pid, signal.SIGKILL)
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, 0)
            self.workers.pop(pid, None)

    # --- plumbing ------------------------------------------------------------------------

    def _reap(self) -> list[tuple[int, str]]:
        dead: list[tuple[int, str]] = []
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                break
            if pid == 0:
                break
            if pid in self.workers:
                dead.append((pid, _describe(status)))
        return dead

    def _pending_signals(self) -> list[int]:
        out: list[int] = []
        while True:
            info = signal.sigtimedwait(_SIGNALS, 0)
            if info is None:
                return out
            out.append(info.si_signo)

    def _drain_ready(self) -> None:
        try:
            while os.read(self._ready_r, 64):
                pass
        except BlockingIOError:
            pass


def _kill(pid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, sig)


def _describe(status: int) -> str:
    if os.WIFSIGNALED(status):
        return f"signal {os.WTERMSIG(status)}"
    return f"exit {os.waitstatus_to_exitcode(status)}"
