"""Who executes chunks: threads on this machine (default), or a Dask distributed cluster.

Both run `workers.execute_chunk` and hand back futures (`done()`, `result()`, `cancel()`), so the
coordinator in coursekit/engine/grading.py treats them alike. On this machine the heavy work is in each
thread's executor (an nbgrader subprocess) and its kernels, so one thread per core is enough to use every
core, and all chunks share one warm kernel parent.
"""

from __future__ import annotations

import threading
import time
import uuid
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, Protocol

from coursekit.course.directory import CourseError
from coursekit.engine.workers import EXECUTORS, WARM, ChunkResult, execute_chunk, prepare_executor


class ChunkFuture(Protocol):
    def done(self) -> bool: ...
    def result(self) -> dict[str, ChunkResult]: ...
    def cancel(self) -> bool: ...


class LocalRunner:
    """`slots` chunks at a time, each an `nbgrader autograde` subprocess of this machine."""

    def __init__(self, slots: int) -> None:
        self.slots = max(1, slots)
        self.where = f"{self.slots} local worker{'s' if self.slots > 1 else ''}"
        self._stopping = threading.Event()
        self._pool = ThreadPoolExecutor(self.slots, thread_name_prefix="coursekit-worker")
        self._bundle: dict[str, bytes] = {}
        # The warm parent imports TensorFlow while the coordinator builds the bundle.
        self._warming = self._pool.submit(WARM.env)

    def start(self, bundle: dict[str, bytes]) -> None:
        self._bundle = bundle
        # The free threads start their nbgrader while the warm parent imports (one thread waits for it).
        preparing = [self._pool.submit(prepare_executor, bundle) for _ in range(self.slots - 1)]
        # Raises when the warm parent cannot start, or the sandbox lacks a protection (and the instructor did
        # not allow that): a reason to grade nobody, not a failure of each submission in turn.
        self._warming.result()
        for future in preparing:  # a failure here is the chunk's to report: it starts its executor again
            future.exception()

    def submit(self, notebooks: dict[str, bytes]) -> Future[dict[str, ChunkResult]]:
        return self._pool.submit(execute_chunk, self._bundle, notebooks, self._stopping.is_set)

    def stop(self) -> None:
        self._stopping.set()

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)
        EXECUTORS.close()
        WARM.stop()


def _execute_on_dask_worker(bundle: dict[str, bytes], notebooks: dict[str, bytes], stop_event: str) -> Any:
    """The Dask task: execute_chunk, stopped when the coordinator sets the run's Event."""
    from distributed import Event

    event, checked, stopping = Event(stop_event), 0.0, False

    def stop() -> bool:
        nonlocal checked, stopping
        if not stopping and time.monotonic() - checked > 2:  # each check asks the scheduler
            checked, stopping = time.monotonic(), event.is_set()
        return stopping

    return execute_chunk(bundle, notebooks, stop)


class DaskRunner:
    """Chunks as tasks on a Dask distributed cluster; the bundle is sent to every worker once."""

    def __init__(self, address: str) -> None:
        from distributed import Client, Event

        try:
            self._client = Client(address, timeout="20s")
        except OSError as exc:
            raise CourseError(
                f"cannot reach the Dask scheduler at {address} ({exc}): start one with `dask scheduler`, "
                "or grade on this machine without --scheduler"
            ) from exc
        workers = self._client.scheduler_info().get("workers", {})
        self.slots = sum(int(info.get("nthreads", 1)) for info in workers.values())
        if not self.slots:
            self._client.close()
            raise CourseError(
                f"the Dask scheduler at {address} has no workers: start some with `dask worker {address}` "
                "in the course's environment (README: Grading on a cluster)"
            )
        self.where = f"{len(workers)} Dask workers ({self.slots} threads) at {address}"
        self._stop_name = f"coursekit-stop-{uuid.uuid4().hex}"
        self._event = Event(self._stop_name, client=self._client)
        self._bundle: Any = None
        self._futures: list[Any] = []

    def start(self, bundle: dict[str, bytes]) -> None:
        self._check_workers_can_import_coursekit()
        self._bundle = self._client.scatter(bundle, broadcast=True, hash=False)

    def _check_workers_can_import_coursekit(self) -> None:
        missing = {}
        for worker, answer in self._client.run(_coursekit_version, on_error="return").items():
            if isinstance(answer, BaseException):
                missing[worker] = answer
        if missing:
            raise CourseError(
                f"Dask workers {', '.join(sorted(missing))} cannot import coursekit "
                f"({next(iter(missing.values()))}): install the course's environment on every worker "
                "(`pip install -c requirements.lock -e .`, README: Grading on a cluster)"
            )

    def submit(self, notebooks: dict[str, bytes]) -> Any:
        future = self._client.submit(_execute_on_dask_worker, self._bundle, notebooks, self._stop_name, pure=False)
        self._futures = [f for f in self._futures if not f.done()] + [future]
        return future

    def stop(self) -> None:
        self._event.set()
        self._client.cancel([f for f in self._futures if not f.done()])

    def close(self) -> None:
        self._client.close()


def _coursekit_version() -> str:
    from coursekit import ASSIGNMENT

    return ASSIGNMENT


def runner_for(scheduler: str | None, workers: int) -> LocalRunner | DaskRunner:
    return DaskRunner(scheduler) if scheduler else LocalRunner(workers)

