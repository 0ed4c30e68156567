"""The worker's side of grading: execute a chunk of submissions, given only bytes.

`execute_chunk(bundle, notebooks)` runs the real `nbgrader autograde --force` on the chunk in a scratch
course built from `bundle` (source/, nbgrader_config.py and a gradebook holding only the assignment's
structure, see `build_bundle`), with kernels forked from this process's warm parent, and returns each
executed notebook or why there is none. It reads nothing of the real course, so it runs the same in a
thread here or in a Dask worker on another machine. Recording grades is the coordinator's job
(coursekit/grading.py): one writer, the real gradebook.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import re
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import nbformat
import psutil

from . import ASSIGNMENT
from .completion import completely_graded
from .course import Course, nbgrader_executable
from .warm_kernels import SOCKET_ENV, warm_environment

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


def pending(course: Course, force: bool) -> list[str]:
    """Students with a submission to grade: all of them with `force`, else those not completely graded."""
    students = sorted(p.parent.name for p in course.submitted.glob(f"*/{ASSIGNMENT}") if p.is_dir())
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
    with tempfile.TemporaryDirectory(prefix="coursekit-bundle-") as scratch:
        root = Path(scratch)
        files = [p for p in (course.root / "source").rglob("*") if p.is_file() and ".ipynb_checkpoints" not in p.parts]
        bundle = {p.relative_to(course.root).as_posix(): p.read_bytes() for p in files}
        bundle["nbgrader_config.py"] = (course.root / "nbgrader_config.py").read_bytes()
        _unpack(bundle, root)
        Course(root).nbgrader("generate_assignment", ASSIGNMENT, "--force", _scratch_db(root), quiet=True)
        bundle["gradebook.db"] = (root / "gradebook.db").read_bytes()
        # The release, generated here too: RestoreAssignmentCells puts deleted test cells back from it.
        bundle.update({p.relative_to(root).as_posix(): p.read_bytes()
                       for p in (root / "release").rglob("*") if p.is_file()})
    return bundle


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

    def env(self) -> dict[str, str]:
        with self._lock:
            if self._stack is None:
                stack = contextlib.ExitStack()
                self._env = stack.enter_context(warm_environment(Course(Path.cwd()).environment()))
                self._stack = stack
            return self._env

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


WARM = _WarmParent()
atexit.register(WARM.stop)


# ---------------------------------------------------------------- executing a chunk


def execute_chunk(
    bundle: dict[str, bytes], notebooks: dict[str, bytes], stop: Callable[[], bool] | None = None
) -> dict[str, ChunkResult]:
    """Execute `notebooks` ({student: submitted notebook}) with the real `nbgrader autograde`.

    Raises ChunkStopped if `stop()` turns true before nbgrader ends; nbgrader and its kernels are killed.
    """
    start = time.monotonic()
    results: dict[str, ChunkResult] = {}
    with tempfile.TemporaryDirectory(prefix="coursekit-chunk-") as scratch:
        root = Path(scratch)
        _unpack(bundle, root)
        runnable = []
        for student, data in notebooks.items():
            problem = _unreadable(data)
            if problem:
                results[student] = ChunkResult(student, None, BAD_NOTEBOOK, problem)
                continue
            _unpack({f"submitted/{student}/{ASSIGNMENT}/{NOTEBOOK}": data}, root)
            runnable.append(student)
        if not runnable:
            return results
        if stop is not None and stop():
            raise ChunkStopped
        returncode = _run_nbgrader(root, stop)
        if stop is not None and stop():
            # Another chunk's stop may have killed this one's kernels: its notebooks cannot be trusted.
            raise ChunkStopped
        log = (root / "nbgrader.log").read_text(errors="replace")
        seconds = (time.monotonic() - start) / len(runnable)
        for student in runnable:
            executed = root / "autograded" / student / ASSIGNMENT / NOTEBOOK
            if executed.is_file():
                results[student] = ChunkResult(student, executed.read_bytes(), seconds=seconds)
            elif returncode < 0:
                results[student] = ChunkResult(
                    student, None, WORKER_CRASH,
                    f"nbgrader was killed by {signal.Signals(-returncode).name} (out of memory?)", seconds,
                )
            else:
                results[student] = ChunkResult(student, None, NBGRADER_ERROR, _reason(log, student), seconds)
    return results


def _unreadable(data: bytes) -> str:
    """Why nbgrader could not read this notebook at all, or "" if it can."""
    try:
        nbformat.reads(data.decode("utf-8"), as_version=4)
    except Exception as exc:
        return f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"[:300]
    return ""


def _run_nbgrader(root: Path, stop: Callable[[], bool] | None) -> int:
    env = WARM.env()
    with open(root / "nbgrader.log", "w") as log:
        process = subprocess.Popen(
            [nbgrader_executable(), "autograde", ASSIGNMENT, "--force", _scratch_db(root)],
            cwd=root, env=env, stdout=log, stderr=subprocess.STDOUT,
            preexec_fn=ignore_interrupts,
        )
        while True:
            try:
                return process.wait(timeout=0.5)
            except subprocess.TimeoutExpired:
                if stop is not None and stop():
                    with contextlib.suppress(ProcessLookupError):
                        process.kill()
                    process.wait()
                    WARM.stop()  # the killed nbgrader's kernels live on in the parent until then
                    raise ChunkStopped from None


def ignore_interrupts() -> None:
    """In a child before it runs: the terminal's Ctrl-C is the coordinator's to handle.

    The child stays in the coordinator's process group, so whoever kills that group kills it too.
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)


_ERROR = re.compile(r"There was an error processing assignment: (?P<path>\S+)")


def _reason(log: str, student: str) -> str:
    """The last line of the traceback nbgrader logged for this student (its exception), else a pointer."""
    lines = log.splitlines()
    for index, line in enumerate(lines):
        found = _ERROR.search(line)
        if found and Path(found["path"]).parent.name == student:
            traceback = []
            for following in lines[index + 1:]:
                if following.startswith("[") and "|" in following.split("]")[0]:  # a new log record
                    if "Traceback (most recent call last)" in following and not traceback:
                        continue  # nbgrader logs the traceback as the record after
                    break
                traceback.append(following.strip())
            message = next((text for text in reversed(traceback) if text), "")
            if message:
                return message[:300]
    errors = [line for line in lines if "ERROR" in line]
    if errors:
        return errors[-1][:300]
    return "nbgrader wrote no autograded notebook and logged no error"
