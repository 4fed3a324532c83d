"""Fill reports: transfers batched and retried until the control plane takes them.

:meth:`ReportQueue.add` queues the transfers of a stored file and wakes the
sender; :meth:`ReportQueue.run` (a task) posts whatever is queued, one
request at a time, with the agent's current state, and on failure keeps the
batch and retries with exponential backoff. Transfers are dropped only when
accepted, or (oldest first, with a warning) beyond ``max_pending``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable

from localcast.appliance.fill.control import ControlClient, ControlError
from localcast.appliance.fill.schema import FillReport, FillState, TransferOut

log = logging.getLogger(__name__)

MAX_BATCH = 10_000  # transfers per report (the control plane's limit)
MAX_ALARM_CHARS = 255


class ReportQueue:
    def __init__(
        self,
        control: ControlClient,
        max_pending: int = 100_000,
        retry_base_s: float = 1.0,
        retry_max_s: float = 60.0,
    ) -> None:
        self.control = control
        self.max_pending = max_pending
        self.retry_base_s = retry_base_s
        self.retry_max_s = retry_max_s
        self.pending: list[TransferOut] = []
        self.state = FillState.IDLE
        self.alarm: str | None = None
        self.sent_reports = 0
        self.trouble: str | None = None
        self._dirty = asyncio.Event()
        self._lock = asyncio.Lock()

    def add(self, transfers: Iterable[TransferOut]) -> None:
        self.pending.extend(transfers)
        if len(self.pending) > self.max_pending and not self._lock.locked():
            dropped = len(self.pending) - self.max_pending
            del self.pending[:dropped]
            log.warning("fill report backlog full: dropped %d oldest transfers", dropped)
        self._dirty.set()

    def set_state(self, state: FillState, alarm: str | None = None) -> None:
        if alarm is not None and len(alarm) > MAX_ALARM_CHARS:
            alarm = alarm[: MAX_ALARM_CHARS - 3] + "..."
        if (state, alarm) != (self.state, self.alarm):
            self.state, self.alarm = state, alarm
            self._dirty.set()

    async def flush(self) -> bool:
        """Post the state and every queued transfer now (in batches of at most
        ``MAX_BATCH``); True when all were accepted."""
        async with self._lock:
            while True:
                batch = self.pending[:MAX_BATCH]
                body = FillReport(state=self.state, alarm=self.alarm, transfers=batch)
                try:
                    await self.control.report(body)
                except ControlError as exc:
                    if str(exc) != self.trouble:
                        log.warning(
                            "fill report not sent (%d transfers kept): %s", len(self.pending), exc
                        )
                        self.trouble = str(exc)
                    return False
                if self.trouble is not None:
                    log.info("fill reports accepted again")
                    self.trouble = None
                del self.pending[: len(batch)]
                self.sent_reports += 1
                if not self.pending:
                    return True

    async def run(self) -> None:
        """Send whenever something is queued or the state changed; until cancelled."""
        delay = self.retry_base_s
        while True:
            await self._dirty.wait()
            self._dirty.clear()
            if await self.flush():
                delay = self.retry_base_s
                continue
            await asyncio.sleep(delay)
            delay = min(self.retry_max_s, delay * 2)
            self._dirty.set()
