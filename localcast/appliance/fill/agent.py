"""The fill agent: the appliance's loop that brings its store to its fill manifest.

Every ``refresh_s`` (and right after a pass that stored something) the agent
fetches its manifest (``GET /v1/appliances/{id}/fill``) and runs a **pass**:

1. what the store lacks (``plan.missing``), in fetch order (urgent titles
   first; only urgent ones while the window is closed), at the manifest's
   ``rate_bps`` (one token bucket for all downloads; 0 = no fill now);
2. when the whole set cannot fit, titles the manifest no longer lists are
   deleted first, coldest first (``plan.eviction_order``);
3. up to ``concurrency`` files at a time: per file ``core.fillqueue.next_step``
   picks a source (or says to wait for a nearer planned copy / a backoff);
   ``download.attempt`` fetches into ``<store>/.fill/<title>/<name>.part``,
   resuming with ``Range`` after a break (from whichever source is next);
   a verified part is renamed into ``<store>/<title>/<name>``; a corrupt one
   is deleted and every source that contributed bytes to it gets a failure;
4. a title starts only when the disk guard admits all its missing bytes; a
   refusal stops new starts (running transfers finish) and raises the alarm;
   a write error (ENOSPC) stops everything at once and deletes the parts;
5. once every manifest file is in the store, titles not in the manifest (and
   stray files of listed titles) are deleted;
6. transfers are queued for ``POST .../fill/report`` after each file, the
   pass's state after each pass (``reports.ReportQueue`` batches and retries).

The agent remembers, per wanted file, when it first wanted it (the escalation
clock) and the failures per source; both survive manifest refreshes. It
never raises on network trouble or a bad manifest: it logs and tries again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from localcast.appliance.fill.control import ControlClient, ControlError
from localcast.appliance.fill.disk import DiskGuard
from localcast.appliance.fill.download import AttemptResult, Outcome, attempt, disk_reason
from localcast.appliance.fill.plan import (
    FileKey,
    FileTask,
    eviction_order,
    fetch_order,
    missing,
    missing_bytes_by_title,
    to_evict,
    wanted_files,
)
from localcast.appliance.fill.ratelimit import RateLimiter
from localcast.appliance.fill.reports import ReportQueue
from localcast.appliance.fill.schema import (
    FillManifest,
    FillState,
    ManifestError,
    SourceIn,
    TransferOut,
)
from localcast.appliance.fill.store import FillStore
from localcast.core.fillqueue import Attempt, SourceFailures, next_step, record_failure
from localcast.core.fillsources import EscalationPolicy, FillSource

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class AgentSettings:
    refresh_s: float = 60.0  # manifest refresh (and the longest a pass runs)
    retry_s: float = 10.0  # after a failed or invalid manifest
    concurrency: int = 4  # files in flight
    reserve_bytes: int = 256 << 20  # free space the fill leaves on the filesystem
    backoff_base_s: float = 1.0
    backoff_max_s: float = 60.0
    delete_unlisted: bool = True  # delete titles the manifest does not list (once complete)


@dataclass
class PassResult:
    state: FillState
    alarm: str | None = None
    files: int = 0  # files stored
    bytes: int = 0  # bytes received (all attempts)
    missing: int = 0  # files the manifest lists that the store still lacks
    deleted: list[str] = field(default_factory=list)  # titles deleted
    waits: dict[FileKey, str] = field(default_factory=dict)  # why a file is waiting


@dataclass
class _Title:
    sources: tuple[FillSource, ...]
    urls: dict[str, str]  # appliance_id -> base_url


class FillAgent:
    """One appliance's fill state; :meth:`step` is one manifest fetch + pass + report."""

    def __init__(
        self,
        http: httpx.AsyncClient,
        control_url: str,
        appliance_id: str,
        credential: str,
        store_dir: Path,
        settings: AgentSettings = AgentSettings(),
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.http = http
        self.appliance_id = appliance_id
        self.settings = settings
        self.clock = clock
        self.control = ControlClient(http, control_url, appliance_id, credential)
        self.store = FillStore(store_dir)
        self.reports = ReportQueue(
            self.control, retry_base_s=settings.backoff_base_s, retry_max_s=settings.backoff_max_s
        )
        self.limiter = RateLimiter(0.0)
        self.manifest: FillManifest | None = None
        self.first_wanted: dict[FileKey, float] = {}
        self.failures: dict[FileKey, dict[str, SourceFailures]] = {}
        self.contributors: dict[FileKey, dict[str, int]] = {}  # bytes in the part, per source
        self.last_rank: dict[str, int] = {}  # title -> place in the newest manifest listing it
        self.trouble: str | None = None
        self.last: PassResult | None = None
        self._received = 0  # bytes received in the current pass (every attempt)

    # --- manifest ---------------------------------------------------------------------------

    async def refresh(self) -> FillManifest | None:
        """Fetch the manifest; None (logged once per change of trouble) when it is unusable."""
        try:
            manifest = await self.control.manifest()
        except (ControlError, ManifestError) as exc:
            self._trouble(str(exc))
            return None
        self._trouble(None)
        if self.manifest is None or manifest.version != self.manifest.version:
            log.info(
                "fill manifest v%d: %d titles, rate %.0f bit/s, window %s %s (%s)",
                manifest.version,
                len(manifest.titles),
                manifest.rate_bps,
                manifest.window.spec,
                manifest.window.tz,
                "open" if manifest.window.open else "closed",
            )
        self.manifest = manifest
        for rank, t in enumerate(manifest.titles):
            self.last_rank[t.title_id] = rank
        return manifest

    def _trouble(self, trouble: str | None) -> None:
        if trouble != self.trouble:
            if trouble:
                log.error("fill agent %s: %s", self.appliance_id, trouble)
            else:
                log.info("fill agent %s: control plane answers again", self.appliance_id)
            self.trouble = trouble

    # --- one pass ----------------------------------------------------------------------------

    async def run_pass(
        self, manifest: FillManifest, deadline: float, hard_deadline: float | None = None
    ) -> PassResult:
        """Work on ``manifest`` until done, ``deadline`` (no new starts after it) or
        ``hard_deadline`` (running transfers are cut; their parts stay for a resume)."""
        st = self.settings
        wanted = wanted_files(manifest)
        present = await asyncio.to_thread(self._present)
        lacking = missing(wanted, present)
        self._forget_unwanted(wanted)
        await asyncio.to_thread(self.store.prune_parts, {t.key for t in lacking})
        result = PassResult(FillState.IDLE, missing=len(lacking))
        if not lacking:
            if st.delete_unlisted:
                result.deleted = await asyncio.to_thread(self._delete_unlisted, manifest, present)
            return result

        todo = fetch_order(lacking, manifest.window.open)
        if manifest.rate_bps <= 0 or not todo:
            result.state = FillState.CLOSED
            return result
        self.limiter.set_rate(manifest.rate_bps)

        usage = await asyncio.to_thread(self.store.usage)
        guard = DiskGuard(
            manifest.capacity_bytes, st.reserve_bytes, usage.total, self.store.free_bytes
        )
        parts = {t.key: self.store.part_size(*t.key) for t in todo}
        need_by_title = missing_bytes_by_title(todo, parts)
        short, _ = guard.shortfall(sum(need_by_title.values()))
        if short > 0:
            unlisted = [t for t in usage.title_bytes if t not in manifest.title_ids]
            victims = to_evict(eviction_order(unlisted, self.last_rank), usage.title_bytes, short)
            for title_id in victims:
                freed = await asyncio.to_thread(self.store.remove_title, title_id)
                guard.freed(freed)
                result.deleted.append(title_id)
                log.info("fill: deleted %s (not in the manifest) to make room", title_id)

        titles = {
            t.title_id: _Title(tuple(manifest.source(s) for s in t.sources), _urls(t.sources))
            for t in manifest.titles
        }
        policy = EscalationPolicy(manifest.escalation.wait_s, manifest.escalation.max_tier_sites)
        self._received = 0
        ended_waiting = await self._schedule(
            todo, titles, policy, guard, need_by_title, deadline, hard_deadline, result
        )
        result.bytes = self._received

        present = await asyncio.to_thread(self._present)
        result.missing = len(missing(wanted, present))
        if result.alarm is not None:
            result.state = FillState.ALARM
        elif result.missing == 0:
            result.state = FillState.IDLE
            if st.delete_unlisted:
                result.deleted += await asyncio.to_thread(self._delete_unlisted, manifest, present)
        elif ended_waiting:
            result.state = FillState.WAITING
        else:
            result.state = FillState.FILLING
        return result

    async def _schedule(
        self,
        todo: list[FileTask],
        titles: dict[str, _Title],
        policy: EscalationPolicy,
        guard: DiskGuard,
        need_by_title: dict[str, int],
        deadline: float,
        hard_deadline: float | None,
        result: PassResult,
    ) -> bool:
        """Run the transfers; True when it ended with every remaining file waiting."""
        st = self.settings
        pending: dict[FileKey, FileTask] = {t.key: t for t in todo}
        ready_at: dict[FileKey, float] = {}
        active: dict[asyncio.Task[AttemptResult], tuple[FileTask, str]] = {}
        admitted: set[str] = set()
        stop_starting = False
        first_round = True  # a pass always looks at its files once, however late it starts
        try:
            while True:
                now = self.clock()
                if hard_deadline is not None and now >= hard_deadline:
                    return False
                if not stop_starting and (now < deadline or first_round):
                    first_round = False
                    busy = {task.key for task, _ in active.values()}
                    for key, task in pending.items():
                        if len(active) >= st.concurrency:
                            break
                        if key in busy or ready_at.get(key, now) > now:
                            continue
                        title = titles[task.title_id]
                        step = next_step(
                            title.sources,
                            self.failures.get(key, {}),
                            self.first_wanted.setdefault(key, now),
                            now,
                            policy,
                            st.backoff_base_s,
                            st.backoff_max_s,
                        )
                        if not isinstance(step, Attempt):
                            ready_at[key] = step.until
                            result.waits[key] = step.reason
                            continue
                        result.waits.pop(key, None)
                        if task.title_id not in admitted:
                            why = guard.admit(task.title_id, need_by_title[task.title_id])
                            if why is not None:
                                self._alarm(result, why)
                                stop_starting = True
                                break
                            admitted.add(task.title_id)
                        if not active:
                            self.reports.set_state(FillState.FILLING)
                        url = title.urls[step.source.appliance_id] + task.name
                        job = asyncio.create_task(self._fetch(task, step.source, url, guard))
                        active[job] = (task, step.source.appliance_id)
                if not active:
                    if stop_starting or not pending:
                        return False
                    wake = min(ready_at.get(k, now) for k in pending)
                    if wake > now and (wake >= deadline or now >= deadline):
                        return True  # every file left waits beyond this pass
                    if now >= deadline:
                        return False  # out of time with work ready
                    await asyncio.sleep(max(0.0, wake - now))
                    continue
                timeouts = [t - now for k, t in ready_at.items() if k in pending and t > now]
                if hard_deadline is not None:
                    timeouts.append(hard_deadline - now)
                timeout = max(0.0, min(timeouts)) if timeouts else None
                done, _ = await asyncio.wait(
                    active, timeout=timeout, return_when=asyncio.FIRST_COMPLETED
                )
                disk_trouble: str | None = None
                for job in done:
                    task, source_id = active.pop(job)
                    try:
                        res = job.result()
                    except Exception:  # a bug or an odd local error: that file, later
                        log.exception("fill: %s/%s failed unexpectedly", *task.key)
                        self._failed(task.key, source_id)
                        continue
                    if res.outcome is Outcome.DONE:
                        pending.pop(task.key, None)
                        result.files += 1
                    elif res.outcome is Outcome.DISK:
                        disk_trouble = disk_trouble or res.reason
                if disk_trouble is not None:
                    self._alarm(result, disk_trouble)
                    await _cancel(active)
                    await asyncio.to_thread(self.store.remove_all_parts)
                    self.contributors.clear()
                    return False
        finally:
            await _cancel(active)

    async def _fetch(
        self, task: FileTask, source: FillSource, url: str, guard: DiskGuard
    ) -> AttemptResult:
        key = task.key
        try:
            part = await asyncio.to_thread(
                self.store.open_part, task.title_id, task.name, task.size
            )
        except OSError as exc:
            return AttemptResult(Outcome.DISK, 0, disk_reason(exc))
        contributors = self.contributors.setdefault(key, {})
        if part.have == 0:
            contributors.clear()
        sid = source.appliance_id

        def written(n: int) -> None:  # per read: the disk budget and who sent the part's bytes
            guard.written(n)
            if n < 0:  # the part was emptied (a 200 answered our range)
                contributors.clear()
            else:
                contributors[sid] = contributors.get(sid, 0) + n
                self._received += n

        try:
            res = await attempt(self.http, url, part, task.size, task.sha256, self.limiter, written)
        finally:
            part.close()
        if res.outcome is Outcome.DONE:
            try:
                await asyncio.to_thread(self.store.publish, part.path, task.title_id, task.name)
            except OSError as exc:
                part.discard()
                return AttemptResult(Outcome.DISK, res.received, f"disk error: {exc}")
            done_at = self.clock()
            self.reports.add(
                TransferOut(
                    title_id=task.title_id,
                    name=task.name,
                    source_id=from_id,
                    bytes=n,
                    completed_at=done_at,
                )
                for from_id, n in contributors.items()
            )
            log.debug(
                "fill: stored %s/%s (%d bytes: %s)",
                task.title_id,
                task.name,
                task.size,
                ", ".join(f"{n} from {from_id}" for from_id, n in contributors.items()),
            )
            self._forget(key)
        elif res.outcome is Outcome.CORRUPT:
            blamed = sorted(set(contributors) | {sid})
            log.warning(
                "fill: %s/%s from %s rejected: %s (part deleted; a failure for %s)",
                task.title_id,
                task.name,
                sid,
                res.reason,
                ", ".join(blamed),
            )
            guard.written(-part.have)
            part.discard()
            contributors.clear()
            for from_id in blamed:
                self._failed(key, from_id)
        elif res.outcome is Outcome.FAILED:
            log.info(
                "fill: %s/%s from %s failed after %d bytes: %s",
                task.title_id,
                task.name,
                sid,
                res.received,
                res.reason,
            )
            self._failed(key, sid)
        else:  # DISK: the caller stops the pass and deletes every part
            part.discard()
        return res

    def _failed(self, key: FileKey, source_id: str) -> None:
        per_file = self.failures.setdefault(key, {})
        per_file[source_id] = record_failure(per_file.get(source_id), self.clock())

    def _forget(self, key: FileKey) -> None:
        self.first_wanted.pop(key, None)
        self.failures.pop(key, None)
        self.contributors.pop(key, None)

    def _forget_unwanted(self, wanted: dict[FileKey, FileTask]) -> None:
        for table in (self.first_wanted, self.failures, self.contributors):
            for key in [k for k in table if k not in wanted]:
                del table[key]

    def _alarm(self, result: PassResult, reason: str) -> None:
        if result.alarm is None:
            result.alarm = reason
            log.error("fill stopped: %s", reason)

    # --- the store ------------------------------------------------------------------------

    def _present(self) -> dict[str, dict[str, int]]:
        out: dict[str, dict[str, int]] = {}
        for title_id in self.store.titles():
            out[title_id] = self.store.title_files(title_id)
        return out

    def _delete_unlisted(
        self, manifest: FillManifest, present: dict[str, dict[str, int]]
    ) -> list[str]:
        """Everything complete: delete titles not listed, and unlisted files of listed ones."""
        deleted = []
        listed = {t.title_id: {f.name for f in t.files} for t in manifest.titles}
        for title_id in present:
            if title_id not in listed:
                self.store.remove_title(title_id)
                deleted.append(title_id)
                log.info("fill: deleted %s (not in manifest v%d)", title_id, manifest.version)
            else:
                self.store.remove_stray_files(title_id, listed[title_id])
        return deleted

    # --- the loop --------------------------------------------------------------------------

    async def step(self) -> tuple[PassResult | None, float]:
        """Fetch the manifest, run a pass, report; (the pass or None, seconds to the next)."""
        started = self.clock()
        manifest = await self.refresh()
        if manifest is None:
            return None, self.settings.retry_s
        deadline = started + self.settings.refresh_s
        if not manifest.window.open and manifest.window.next_open_at is not None:
            deadline = max(started, min(deadline, manifest.window.next_open_at))
        hard = manifest.window.closes_at if manifest.window.open else None
        result = await self.run_pass(manifest, deadline, hard)
        previous, self.last = self.last, result
        self.reports.set_state(result.state, result.alarm)
        await self.reports.flush()
        news = result.files or result.deleted or previous is None or previous.state != result.state
        log.log(
            logging.INFO if news else logging.DEBUG,
            "fill pass: %s, %d files stored (%d bytes), %d missing%s",
            result.state,
            result.files,
            result.bytes,
            result.missing,
            f", alarm: {result.alarm}" if result.alarm else "",
        )
        if result.files and result.alarm is None:
            return result, 0.0
        return result, max(0.0, deadline - self.clock())

    async def run(self) -> None:
        """Steps forever (until cancelled), with the report sender beside them."""
        sender = asyncio.create_task(self.reports.run())
        try:
            while True:
                try:
                    _, wait = await self.step()
                except Exception:  # never let one bad pass end the agent
                    log.exception("fill pass failed; trying again in %.0f s", self.settings.retry_s)
                    wait = self.settings.retry_s
                if wait > 0:
                    await asyncio.sleep(wait)
        finally:
            sender.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await sender


async def run_fill_agent(
    control_url: str,
    appliance_id: str,
    credential: str,
    store_dir: Path,
    settings: AgentSettings = AgentSettings(),
    timeout_s: float = 30.0,
    once: bool = False,
    client: httpx.AsyncClient | None = None,
) -> PassResult | None:
    """Run the agent until cancelled (``once``: one pass, then return it)."""
    own = client is None
    http = client or httpx.AsyncClient(
        timeout=httpx.Timeout(timeout_s, connect=min(timeout_s, 5.0)),
        limits=httpx.Limits(max_connections=max(8, settings.concurrency * 2)),
        trust_env=False,
    )
    agent = FillAgent(http, control_url, appliance_id, credential, store_dir, settings)
    try:
        if once:
            result, _ = await agent.step()
            return result
        await agent.run()
        return None
    finally:
        if own:
            await http.aclose()


def _urls(sources: tuple[SourceIn, ...]) -> dict[str, str]:
    return {s.appliance_id: s.base_url for s in sources}


async def _cancel(active: dict[asyncio.Task[AttemptResult], tuple[FileTask, str]]) -> None:
    for job in active:
        job.cancel()
    for job in list(active):
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await job
    active.clear()
