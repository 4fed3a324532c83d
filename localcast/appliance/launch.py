"""Starting an appliance from code: tests, the demo, the control plane's own tests.

* :func:`start_appliance` runs the real thing, ``python -m localcast ...
  appliance serve``, as a subprocess (supervisor + workers) on a free port
  and returns once every worker listens; stop it with ``.stop()`` or a
  ``with`` block.
* :func:`serve_in_thread` runs one worker's event loop in a thread of this
  process; cheaper, for unit-level tests.

Both return an object with ``.url`` (``http://127.0.0.1:PORT``).
"""

from __future__ import annotations

import asyncio
import os
import re
import select
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import IO, Any

from localcast.appliance.settings import ApplianceSettings
from localcast.appliance.worker import listen_socket, serve
from localcast.core.tokens import Keyring
from localcast.keyfile import load_keyring

READY_RE = re.compile(r"appliance listening on (http://\S+)")


class ApplianceProcess:
    """A running ``localcast appliance serve`` subprocess."""

    def __init__(self, process: subprocess.Popen[str], url: str) -> None:
        self.process = process
        self.url = url

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def port(self) -> int:
        return int(self.url.rsplit(":", 1)[1])

    def stop(self, timeout: float = 15.0) -> int:
        """SIGTERM, wait (SIGKILL after ``timeout``); the exit status."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self.process.stdout is not None:
            self.process.stdout.close()
        return self.process.returncode

    def __enter__(self) -> ApplianceProcess:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def start_appliance(
    home: Path | None = None,
    *,
    store: Path | None = None,
    keys: Path | None = None,
    listen: str = "127.0.0.1",
    port: int = 0,
    workers: int = 1,
    cors_origins: Sequence[str] = (),
    extra_args: Sequence[str] = (),
    env: dict[str, str] | None = None,
    stderr: IO[Any] | int | None = None,
    log_level: str | None = None,
    timeout: float = 30.0,
) -> ApplianceProcess:
    """Run ``localcast [--home HOME] appliance serve`` and wait until it listens.

    ``port=0`` picks a free port (see ``.url``). ``extra_args`` go after ``serve``
    (e.g. ``["--access-log", "off", "--header-timeout", "1"]``). The server's
    stderr (its log) goes to ``stderr`` (default: inherited).

    Example::

        with start_appliance(home, store=store_dir, keys=keys_json, workers=1) as app:
            httpx.get(app.url + signed_path(keyring, "/title", expires) + "/<sha256>.m4s")
    """
    cmd = [sys.executable, "-m", "localcast"]
    if home is not None:
        cmd += ["--home", str(home)]
    if log_level is not None:
        cmd += ["--log-level", log_level]
    cmd += ["appliance", "serve", "--listen", listen, "--port", str(port)]
    cmd += ["--workers", str(workers)]
    if store is not None:
        cmd += ["--store", str(store)]
    if keys is not None:
        cmd += ["--keys", str(keys)]
    for origin in cors_origins:
        cmd += ["--cors-origin", origin]
    cmd += list(extra_args)
    proc = subprocess.Popen(
        cmd,
        stdout=subprocess.PIPE,
        stderr=stderr,
        text=True,
        env={**os.environ, **(env or {})},
    )
    assert proc.stdout is not None
    deadline = time.monotonic() + timeout
    seen: list[str] = []
    while time.monotonic() < deadline:
        readable, _, _ = select.select([proc.stdout], [], [], 0.1)
        if readable:
            line = proc.stdout.readline()
            if line:
                seen.append(line)
                m = READY_RE.search(line)
                if m:
                    return ApplianceProcess(proc, m.group(1))
                continue
        if proc.poll() is not None:
            break
    proc.kill()
    proc.wait()
    raise RuntimeError(
        f"appliance did not start (exit {proc.returncode}): {' '.join(cmd)}\n{''.join(seen)}"
    )


class ThreadedAppliance:
    """One worker serving from a thread of this process; ``stop()`` ends it."""

    def __init__(self, settings: ApplianceSettings, keyring: Keyring) -> None:
        self.settings = settings
        self._sock = listen_socket(settings.listen, settings.port, reuse_port=False)
        host, port = self._sock.getsockname()[:2]
        host = f"[{host}]" if ":" in host else host
        self.url = f"http://{host}:{port}"
        self._keyring = keyring
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="appliance", daemon=True)

    def start(self) -> ThreadedAppliance:
        self._thread.start()
        if not self._ready.wait(15) or self._error is not None:
            raise RuntimeError(f"appliance thread did not start: {self._error!r}")
        return self

    def _run(self) -> None:
        try:
            import uvloop

            loop: asyncio.AbstractEventLoop = uvloop.new_event_loop()
        except ImportError:  # pragma: no cover
            loop = asyncio.new_event_loop()
        self._loop = loop

        async def main() -> None:
            self._stop = asyncio.Event()
            await serve(self.settings, self._keyring, self._sock, self._stop, self._ready.set)

        try:
            loop.run_until_complete(main())
        except BaseException as exc:  # reported by start()
            self._error = exc
            self._ready.set()
        finally:
            loop.close()

    def stop(self) -> None:
        if self._loop is not None and self._stop is not None and self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(30)

    def __enter__(self) -> ThreadedAppliance:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def serve_in_thread(
    settings: ApplianceSettings, keyring: Keyring | None = None
) -> ThreadedAppliance:
    """Start one worker in a background thread (``settings.port`` 0 picks a free port)."""
    return ThreadedAppliance(settings, keyring or load_keyring(settings.keys)).start()
