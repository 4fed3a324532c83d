"""The planner's answers to appliance requests, computed off the request path.

The planner (:func:`localcast.portal.eligibility.evaluate`) needs a few seconds
(several one-day simulations, in two processes): too long for a form's POST.
A new request is stored ``evaluating``; :class:`EligibilityRunner` answers it
in a background thread, one request at a time, and stores the answer
(``submitted``) or the error (``failed``); the request page polls until then.

The simulations run in a child process per request
(``python -m localcast.portal.eligibility_worker``, JSON in and out, killed
after ``WORKER_TIMEOUT_S``): the planner forks its own worker processes, and
forking the web server (threads holding locks) is unsafe; forking a small
single-threaded process is not. A crash there fails one request, not the server.
A request left ``evaluating`` by a restart is evaluated again the next time
its page (or the list) is shown (:meth:`EligibilityRunner.ensure`).
"""

from __future__ import annotations

import json
import logging
import queue
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

from localcast.portal.eligibility import RequestForm
from localcast.portal.requests_store import FAILED, SUBMITTED, RequestStore

log = logging.getLogger(__name__)
Evaluate = Callable[[RequestForm], dict[str, Any]]
WORKER_TIMEOUT_S = 300.0


def run_worker(form: RequestForm, timeout_s: float = WORKER_TIMEOUT_S) -> dict[str, Any]:
    """The planner's answer from a child process (see the module text)."""
    try:
        done = subprocess.run(
            [sys.executable, "-m", "localcast.portal.eligibility_worker"],
            input=json.dumps(form.to_json()),
            capture_output=True,
            text=True,
            timeout=timeout_s,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise RuntimeError(f"the planner took more than {timeout_s:g} s") from exc
    if done.returncode != 0:
        lines = done.stderr.strip().splitlines()
        raise RuntimeError(lines[-1] if lines else f"the planner exited with {done.returncode}")
    answer = json.loads(done.stdout)
    assert isinstance(answer, dict)
    return answer


class EligibilityRunner:
    """Answers requests one at a time in a background (daemon) thread, storing each answer."""

    def __init__(self, evaluate: Evaluate = run_worker) -> None:
        self.evaluate = evaluate
        self._lock = threading.Lock()
        self._jobs: dict[int, threading.Event] = {}  # queued or running -> set when done
        self._queue: queue.Queue[tuple[RequestStore, int, RequestForm]] = queue.Queue()
        self._thread: threading.Thread | None = None

    def submit(self, store: RequestStore, request_id: int, form: RequestForm) -> None:
        with self._lock:
            if request_id in self._jobs:
                return
            self._jobs[request_id] = threading.Event()
            self._queue.put((store, request_id, form))
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._loop, name="eligibility", daemon=True)
                self._thread.start()

    def ensure(self, store: RequestStore, request_id: int, form: dict[str, Any]) -> None:
        """Evaluate a request found ``evaluating`` if no job here is on it (a restart)."""
        if not self.running(request_id):
            self.submit(store, request_id, RequestForm.from_json(form))

    def running(self, request_id: int) -> bool:
        with self._lock:
            return request_id in self._jobs

    def wait(self, request_id: int, timeout: float | None = None) -> bool:
        """Until the request's evaluation is done (tests); False on timeout."""
        with self._lock:
            done = self._jobs.get(request_id)
        return True if done is None else done.wait(timeout)

    def _loop(self) -> None:
        while True:
            store, request_id, form = self._queue.get()
            try:
                self._run(store, request_id, form)
            finally:
                with self._lock:
                    done = self._jobs.pop(request_id, None)
                if done is not None:
                    done.set()

    def _run(self, store: RequestStore, request_id: int, form: RequestForm) -> None:
        t0 = time.monotonic()
        try:
            answer = dict(self.evaluate(form))
            answer["seconds"] = round(time.monotonic() - t0, 2)
            status = SUBMITTED
        except Exception as exc:
            log.exception("appliance request %s: the planner failed", request_id)
            answer = {"error": f"{type(exc).__name__}: {exc}"[:500]}
            status = FAILED
        try:
            store.set_eligibility(request_id, answer, status)
        except Exception:  # the database may be gone (shutting down): evaluated again later
            log.exception("appliance request %s: could not store the answer", request_id)


RUNNER = EligibilityRunner()
