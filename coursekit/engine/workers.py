"""The worker's side of grading: execute a chunk of submissions, given only bytes.

`execute_chunk(bundle, notebooks)` runs nbgrader's autograde on the chunk, in this thread's long-lived
executor (coursekit/engine/autograder.py: nbgrader imported once), in a scratch course built from `bundle`
(source/, release/, nbgrader_config.py and a gradebook holding only the assignment's structure, see
`build_bundle`), with kernels forked from this process's warm parent, and returns each executed notebook
or why there is none. It reads nothing of the real course, so it runs the same in a thread here or in a
Dask worker on another machine. Recording grades is the coordinator's job (coursekit/engine/grading.py): one
writer, the real gradebook.
"""

from __future__ import annotations

import atexit
import contextlib
import hashlib
import os
import queue
import shutil
import signal
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

import nbformat
import psutil

from coursekit import ASSIGNMENT
from coursekit.course.directory import Course
from coursekit.engine import bundle_cache, intake
from coursekit.engine.autograder import AutograderProcess
from coursekit.engine.completion import completely_graded
from coursekit.kernels.warm_kernels import SOCKET_ENV, warm_environment

# Why a submission has no executed notebook; the summary table groups failures by these.
BAD_NOTEBOOK = "bad notebook"
NBGRADER_ERROR = "nbgrader error"
WORKER_CRASH = "worker crash"

NOTEBOOK = f"{ASSIGNMENT}.ipynb"


@dataclass(frozen=True)
class ChunkResult:
    """One submission's execution: the autograded notebook, or the kind of failure and its reason."""

    student: str
    notebook: bytes | None
    failure: str | None = None
    reason: str = ""
    seconds: float = 0.0


class ChunkStopped(RuntimeError):
    """The chunk was stopped (Ctrl-C): its submissions stay ungraded, for the next run."""


def pending(course: Course, force: bool, students: list[str] | None = None) -> list[str]:
    """Students with a submission to grade: all of them with `force`, else those not completely graded.

    `students`: those intake found (`intake.find`, which lists submitted/ without globbing, links or refused ids).
    """
    if students is None:
        students = intake.find(course).students
    if force:
        return students
    done = completely_graded(course, students)
    return [s for s in students if s not in done]


# ---------------------------------------------------------------- what every worker needs, built once


def build_bundle(course: Course) -> dict[str, bytes]:
    """source/, release/, nbgrader_config.py and a fresh SQLite gradebook holding only the assignment's structure.

    The gradebook comes from `nbgrader generate_assignment` in a scratch course, so workers never read
    the real gradebook, whatever database that is.
    """
    files = [p for p in (course.root / "source").rglob("*") if p.is_file() and ".ipynb_checkpoints" not in p.parts]
    bundle = {p.relative_to(course.root).as_posix(): p.read_bytes() for p in files}
    bundle["nbgrader_config.py"] = (course.root / "nbgrader_config.py").read_bytes()

    def generate() -> dict[str, bytes]:
        with tempfile.TemporaryDirectory(prefix="coursekit-bundle-") as scratch:
            root = Path(scratch)
            _unpack(bundle, root)
            Course(root).nbgrader("generate_assignment", ASSIGNMENT, "--force", _scratch_db(root), quiet=True)
            made = {"gradebook.db": (root / "gradebook.db").read_bytes()}
            # The release, generated here too: RestoreAssignmentCells puts deleted test cells back from it.
            made.update({p.relative_to(root).as_posix(): p.read_bytes()
                         for p in (root / "release").rglob("*") if p.is_file()})
            return made

    return {**bundle, **bundle_cache.made(bundle, generate)}


def _scratch_db(root: Path) -> str:
    # On the command line, so it wins over any db_url in nbgrader_config.py (which may name the real one).
    return f"--CourseDirectory.db_url=sqlite:///{root / 'gradebook.db'}"


def _unpack(files: dict[str, bytes], root: Path) -> None:
    for name, data in files.items():
        relative = PurePosixPath(name)
        if relative.is_absolute() or ".." in relative.parts:
            raise ValueError(f"bundle path {name!r} leaves the scratch course")
        target = root / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)


# ---------------------------------------------------------------- one warm parent per worker process


class _WarmParent:
    """This process's warm kernel parent, started on first use and shared by its threads."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._stack: contextlib.ExitStack | None = None
        self._env: dict[str, str] = {}
        self._early: dict[str, str] | None = None  # the paths, known before the parent is ready
        self._early_known = threading.Condition()

    def env(self) -> dict[str, str]:
        """The environment for nbgrader: starts the parent on first use, and waits until it is ready."""
        with self._lock:
            if self._stack is None:
                stack = contextlib.ExitStack()
                try:
                    self._env = stack.enter_context(warm_environment(Course(Path.cwd()).environment(),
                                                                     self._paths_known))
                finally:
                    with self._early_known:  # known, or (on a failure) never: wake whoever waits for it
                        self._early = self._early or {}
                        self._early_known.notify_all()
                self._stack = stack
            return self._env

    def _paths_known(self, env: dict[str, str]) -> None:
        with self._early_known:
            self._early = env
            self._early_known.notify_all()

    def early_env(self, timeout: float = 120) -> dict[str, str] | None:
        """What `env()` will return, as soon as its paths are known: while another thread's `env()` waits for the
        parent to import TensorFlow, an nbgrader can start. Call it only once an `env()` is under way (LocalRunner
        starts one first); None if the parent failed to start, or if its paths are not known within `timeout`."""
        with self._early_known:
            if not self._early_known.wait_for(lambda: self._early is not None, timeout):
                return None
            return self._early or None

    def stop(self) -> None:
        """Kill the parent's kernels (nbgrader shuts them down itself, unless it was killed), then the parent.

        The terminal's Ctrl-C may have ended the parent already, orphaning its kernels; they still carry its
        command line (they are forks of it), which names this parent's socket.
        """
        with self._lock:
            if self._stack is None:
                return
            socket_path = self._env[SOCKET_ENV]
            kernels: dict[int, psutil.Process] = {}
            for process in psutil.process_iter():
                with contextlib.suppress(psutil.Error):
                    if socket_path in process.cmdline():
                        if process.ppid() == os.getpid():  # the parent: stopped by its own context below
                            kernels.update((child.pid, child) for child in process.children(recursive=True))
                        else:
                            kernels[process.pid] = process
            for kernel in kernels.values():
                with contextlib.suppress(psutil.Error):
                    kernel.kill()
            self._stack.close()
            self._stack = None
            with self._early_known:
                self._early = None  # the next env() starts another parent, with paths of its own


WARM = _WarmParent()
atexit.register(WARM.stop)


# ---------------------------------------------------------------- executors: nbgrader, started once per thread


class _Executor:
    """coursekit.engine.autograder in a scratch course holding one bundle, with this process's warm kernels.

    One per thread that executes chunks (threads of a LocalRunner, or of a Dask worker), kept from chunk to
    chunk so nbgrader's imports are paid once; replaced after `RECYCLE_AFTER` submissions, so whatever
    nbgrader keeps per notebook cannot pile up over a cohort of thousands.
    """

    RECYCLE_AFTER = 200

    def __init__(self, bundle: dict[str, bytes], fingerprint: str, warm: dict[str, str] | None = None) -> None:
        """`warm`: the warm parent's environment (WARM.env() when not given)."""
        self.fingerprint, self.served = fingerprint, 0
        self.root = Path(tempfile.mkdtemp(prefix="coursekit-chunk-"))
        _unpack(bundle, self.root)
        # Its own temp folder, removed with the scratch course: a killed nbgrader leaves kernel connection files.
        (self.root / "tmp").mkdir()
        env = {**(warm or WARM.env()), "TMPDIR": str(self.root / "tmp"), "COURSEKIT_EXECUTE_ONLY": "1"}
        self.process = AutograderProcess(self.root, env, self.root / "nbgrader.log", (_scratch_db(self.root),))

    def usable(self, fingerprint: str) -> bool:
        return (fingerprint == self.fingerprint and self.process.process.poll() is None
                and self.served < self.RECYCLE_AFTER)

    def run(self, students: list[str], stop: Callable[[], bool] | None) -> dict[str, Any] | None:
        """The process's reply for `students`, or None if it died. Raises ChunkStopped when `stop()` turns true."""
        self.served += len(students)
        try:
            self.process.send(students)
        except BrokenPipeError:
            return None
        while True:
            try:
                return self.process.replies.get(timeout=0.5)
            except queue.Empty:
                if stop is not None and stop():
                    self.close(kill=True)
                    WARM.stop()  # the killed nbgrader's kernels live on in the parent until then
                    raise ChunkStopped from None

    def close(self, kill: bool = False) -> None:
        if kill:
            self.process.kill()
        self.process.close(timeout=30)
        shutil.rmtree(self.root, ignore_errors=True)


class _Executors:
    """This process's executors, one per thread; all closed when the run (or the process) ends."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._by_thread: dict[int, _Executor] = {}

    def for_this_thread(self, bundle: dict[str, bytes], warm: dict[str, str] | None = None) -> _Executor:
        fingerprint = _fingerprint(bundle)
        thread = threading.get_ident()
        with self._lock:
            executor = self._by_thread.get(thread)
        if executor is not None and not executor.usable(fingerprint):
            executor.close()  # idle between chunks: it ends as soon as its stdin closes
            executor = None
        if executor is None:
            executor = _Executor(bundle, fingerprint, warm)
            with self._lock:
                self._by_thread[thread] = executor
        return executor

    def close(self) -> None:
        with self._lock:
            executors, self._by_thread = list(self._by_thread.values()), {}
        for executor in executors:
            executor.close()


def _fingerprint(bundle: dict[str, bytes]) -> str:
    digest = hashlib.sha256()
    for name in sorted(bundle):
        digest.update(name.encode() + b"\0" + hashlib.sha256(bundle[name]).digest())
    return digest.hexdigest()


EXECUTORS = _Executors()
atexit.register(EXECUTORS.close)  # registered after WARM's: runs before it, while kernels can still end cleanly


def prepare_executor(bundle: dict[str, bytes]) -> None:
    """This thread's executor, started while the warm parent is still importing (LocalRunner.start): nbgrader's
    imports then cost the first grade nothing. Nothing is executed until a chunk comes, after the parent is ready;
    if it never is, the run ends and closes the executor unused."""
    warm = WARM.early_env()
    if warm is not None:
        EXECUTORS.for_this_thread(bundle, warm)


# ---------------------------------------------------------------- executing a chunk


def execute_chunk(
    bundle: dict[str, bytes], notebooks: dict[str, bytes], stop: Callable[[], bool] | None = None
) -> dict[str, ChunkResult]:
    """Execute `notebooks` ({student: submitted notebook}) with nbgrader's autograde, in this thread's executor.

    Raises ChunkStopped if `stop()` turns true before nbgrader ends; nbgrader and its kernels are killed.
    """
    start = time.monotonic()
    results: dict[str, ChunkResult] = {}
    runnable = {}
    for student, data in notebooks.items():
        problem = _unreadable(data)
        if problem:
            results[student] = ChunkResult(student, None, BAD_NOTEBOOK, problem)
        else:
            runnable[student] = data
    if not runnable:
        return results
    if stop is not None and stop():
        raise ChunkStopped
    executor = EXECUTORS.for_this_thread(bundle)
    folders = [executor.root / folder / student for folder in ("submitted", "autograded") for student in runnable]
    try:
        _unpack({f"submitted/{student}/{ASSIGNMENT}/{NOTEBOOK}": data for student, data in runnable.items()},
                executor.root)
        reply = executor.run(list(runnable), stop)
        if stop is not None and stop():
            # Another chunk's stop may have killed this one's kernels: its notebooks cannot be trusted.
            raise ChunkStopped
        seconds = (time.monotonic() - start) / len(runnable)
        if reply is None:
            executor.close()  # the thread's next chunk finds it ended and starts another
            code = executor.process.process.returncode
            why = f"killed by {signal.Signals(-code).name} (out of memory?)" if code and code < 0 else \
                f"ended with exit code {code}"
            for student in runnable:
                results[student] = ChunkResult(student, None, WORKER_CRASH, f"nbgrader {why}", seconds)
            return results
        for student in runnable:
            executed = executor.root / "autograded" / student / ASSIGNMENT / NOTEBOOK
            # The notebook decides, not nbgrader's log: a runaway cell logs an error ("Kernel died ...") that
            # GuardedExecute has turned into that cell's output, and the notebook is written all the same.
            if executed.is_file():
                results[student] = ChunkResult(student, executed.read_bytes(), seconds=seconds)
            else:
                reason = reply["failed"].get(student, "nbgrader wrote no autograded notebook")
                results[student] = ChunkResult(student, None, NBGRADER_ERROR, reason, seconds)
        return results
    finally:
        for folder in folders:
            shutil.rmtree(folder, ignore_errors=True)


def _unreadable(data: bytes) -> str:
    """Why nbgrader could not read this notebook at all, or "" if it can."""
    try:
        nbformat.reads(data.decode("utf-8"), as_version=4)
    except Exception as exc:
        return f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"[:300]
    return ""
