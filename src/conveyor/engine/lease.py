"""The lease keeper: a thread that renews the locks of a worker's running
jobs and runs the stalled-job check.

It runs on its own thread with its own blocking Redis connection, so a
handler that blocks the event loop or burns CPU cannot starve it: while the
worker process lives, its jobs are not declared stalled. A process that is
killed or frozen stops renewing, and its jobs are recovered once their
lease runs out.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable

import redis
import redis.cluster

from conveyor.engine.clock import Clock, clock_arg
from conveyor.engine.commands import running as commands
from conveyor.engine.keys import QueueKeys
from conveyor.errors import ConnectionFailed, RedisOutOfMemory

log = logging.getLogger("conveyor.worker")

#: (lost job ids, {job id: cancel reason})
LeaseReport = Callable[[list[str], dict[str, str]], None]


class LeaseKeeper:
    """Renews every ``renew_interval`` seconds the leases of the jobs in
    ``tokens`` (job id -> token, shared with the event loop) and checks for
    stalled jobs every ``stalled_interval`` seconds."""

    def __init__(
        self,
        client: redis.Redis | redis.cluster.RedisCluster,
        keys: QueueKeys,
        tokens: dict[str, str],
        report: LeaseReport,
        *,
        clock: Clock,
        lock_ms: int,
        renew_interval: float,
        stalled_interval: float,
        max_stalled: int,
        failed_keep: tuple[int, int],
        stalled_out: Callable[[list[str], str], None] | None = None,
        worker_id: str = "",
        beat: Callable[[], str] | None = None,
    ) -> None:
        self._client = client
        self._keys = keys
        self._tokens = tokens
        self._report = report
        self._clock = clock
        self._lock_ms = lock_ms
        self._renew_interval = renew_interval
        self._stalled_interval = stalled_interval
        self._max_stalled = max_stalled
        self._failed_keep = failed_keep
        self._stalled_out = stalled_out
        self._worker_id = worker_id
        self._beat = beat
        self._stop = threading.Event()
        #: Set to renew now rather than at the next interval (see renew_soon).
        self._soon = threading.Event()
        self._renewed_at = 0.0
        self._linger = False
        self._thread = threading.Thread(target=self._run, name="conveyor-lease", daemon=True)
        self.renewals = 0

    def start(self) -> None:
        self._thread.start()

    def stop(self, *, linger: bool = False) -> None:
        """Stops renewing. With ``linger``, the thread goes on renewing the
        jobs left in ``tokens`` until none is left (handler threads that
        cannot be stopped: their jobs stay held while they run), then
        stops by itself."""
        self._linger = linger
        self._stop.set()
        self._soon.set()
        if not linger:
            self._thread.join(timeout=15)
            self._close()

    def _close(self) -> None:
        if self._beat is not None:
            # on failure its beats just stop: readers see it gone once they are stale
            with contextlib.suppress(ConnectionFailed, RedisOutOfMemory, redis.RedisError, OSError):
                self._send_beat("")
        self._client.close()
        if isinstance(self._client, redis.Redis):
            # the client was given its pool, so close() leaves it open
            self._client.connection_pool.disconnect()

    def renew_soon(self) -> None:
        """Renews the leases now, not at the next interval (or a quarter
        interval after the last renewal, if that is later): for jobs whose
        lease began before their worker heard of them (a claim that ran
        behind the marker's block, or one sent again after a lost reply)."""
        self._soon.set()

    def beat(self) -> None:
        """Tells readers this worker is alive, and what it holds."""
        if self._beat is not None:
            self._send_beat(self._beat())

    def _send_beat(self, info: str) -> None:
        """``info`` JSON, or '' for a worker that stopped."""
        commands.beat_worker(
            self._client, self._keys, now=clock_arg(self._clock), worker_id=self._worker_id, info=info
        )

    def _run(self) -> None:
        next_check = 0.0
        failures = 0
        with contextlib.suppress(ConnectionFailed, RedisOutOfMemory, redis.RedisError, OSError):
            self.beat()  # readers see the worker at once, not a renewal later
        while True:
            interval = self._renew_interval if failures == 0 else min(2.0, 0.2 * failures)
            if self._stop.is_set():
                if not (self._linger and self._tokens):
                    break
                time.sleep(interval)
            else:
                self._soon.wait(interval)
                if self._soon.is_set():
                    # renewals asked for come at most once a quarter interval
                    gap = self._renewed_at + self._renew_interval / 4 - time.monotonic()
                    if gap > 0:
                        self._stop.wait(gap)
                self._soon.clear()
                if self._stop.is_set():
                    continue
            try:
                self._renewed_at = time.monotonic()
                self.renew()
                self.beat()
                if time.monotonic() >= next_check:
                    self.check_stalled()
                    next_check = time.monotonic() + self._stalled_interval
                if failures:
                    log.info("lease keeper reconnected to Redis", extra={"event": "reconnected"})
                failures = 0
            except (ConnectionFailed, RedisOutOfMemory, redis.RedisError, OSError) as exc:
                failures += 1
                if failures == 1 or failures % 20 == 0:
                    log.warning("lease renewal failed: %s", exc, extra={"event": "renew_failed"})
            except Exception:  # keep renewing whatever happens
                log.exception("lease keeper error")
        if self._linger:
            self._close()

    def renew(self) -> None:
        tokens = self._tokens.copy()
        if not tokens:
            return
        lost, cancels = commands.extend_locks(
            self._client, self._keys, now=clock_arg(self._clock), lock_ms=self._lock_ms, tokens=tokens
        )
        self.renewals += 1
        if lost or cancels:
            self._report(lost, cancels)

    def check_stalled(self) -> None:
        k = self._keys
        guard_ms = max(1, int(self._stalled_interval * 1000) - 50)
        recovered = commands.recover_stalled(
            self._client,
            k,
            now=clock_arg(self._clock),
            max_stalled=self._max_stalled,
            guard_ms=guard_ms,
            keep_failed=self._failed_keep,
        )
        if recovered is None:
            return
        for job_id in recovered.requeued:
            log.warning(
                "job %s stalled; back to waiting",
                job_id,
                extra={"event": "stalled", "queue": k.queue, "job_id": job_id},
            )
        failed = recovered.failed
        for job_id in failed:
            log.warning(
                "job %s stalled too often; failed",
                job_id,
                extra={"event": "failed", "queue": k.queue, "job_id": job_id},
            )
        if failed and self._stalled_out is not None:
            self._stalled_out(failed, f"stalled more than {self._max_stalled} times")
