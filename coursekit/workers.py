"""Grade on every core, with one writer to the gradebook.

1. In parallel, each worker runs the real `nbgrader autograde` on its share of the submissions, in a
   scratch copy of the course: source/ and the submissions linked, a throwaway SQLite gradebook with only
   the assignment's structure (coursekit/gradebook.py; never the real one, SQLite or PostgreSQL), kernels
   forked from one warm parent.
2. Then one writer runs `nbgrader autograde` on the real course, with Execute replaced by
   `ReplayExecution`, which takes each notebook's outputs from step 1. nbgrader's own steps record every
   grade, in one process, as they would without workers.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from . import ASSIGNMENT
from .completion import completely_graded
from .course import DB_URL_ENV, Course, nbgrader_executable
from .gradebook import structure_only_gradebook
from .warm_kernels import warm_environment

REPLAY_ENV = "COURSEKIT_REPLAY_DIR"


def pending(course: Course, force: bool) -> list[str]:
    """Students with a submission to grade: all of them with `force`, else those not completely graded."""
    students = sorted(p.parent.name for p in course.submitted.glob(f"*/{ASSIGNMENT}") if p.is_dir())
    if force:
        return students
    done = completely_graded(course, students)
    return [s for s in students if s not in done]


def _worker_course(course: Course, root: Path, students: list[str], structure: Path) -> Course:
    root.mkdir(parents=True)
    (root / "source").symlink_to(course.root / "source")
    shutil.copy(course.root / "nbgrader_config.py", root / "nbgrader_config.py")
    shutil.copy(structure, root / "gradebook.db")  # written here, thrown away with the scratch folder
    for student in students:
        (root / "submitted").mkdir(exist_ok=True)
        (root / "submitted" / student).symlink_to(course.submitted / student)
    return Course(root)


def grade_in_parallel(course: Course, workers: int, force: bool) -> None:
    students = pending(course, force)
    shares = [students[i::workers] for i in range(workers) if students[i::workers]]
    start = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="coursekit-workers-") as scratch, \
            warm_environment(course.environment()) as env:
        structure = structure_only_gradebook(course, Path(scratch) / "structure")
        running = []
        for index, share in enumerate(shares):
            worker = _worker_course(course, Path(scratch) / f"worker{index}", share, structure)
            log = open(worker.root / "nbgrader.log", "w")  # noqa: SIM115 - closed below, after the worker ends
            running.append((worker, log, subprocess.Popen(
                [nbgrader_executable(), "autograde", ASSIGNMENT, "--force"],
                cwd=worker.root, env={**env, DB_URL_ENV: worker.db_url}, stdout=log, stderr=subprocess.STDOUT,
            )))
        print(f"executing {len(students)} submissions on {len(running)} workers", flush=True)
        _show_progress(running, len(students))
        for worker, log, process in running:
            if process.wait() != 0:
                # Not fatal: the writer executes whatever a worker did not produce.
                print(f"worker {worker.root.name} failed; see its log below. Its share is executed by the writer.")
                print((worker.root / "nbgrader.log").read_text()[-3000:])
            log.close()
        print("recording grades (one nbgrader process writes the gradebook)", flush=True)
        course.nbgrader("autograde", ASSIGNMENT, *(["--force"] if force else []), env={**env, REPLAY_ENV: scratch})
    elapsed = time.monotonic() - start
    print(f"graded {len(students)} submissions in {elapsed:.0f} s, {elapsed / max(len(students), 1):.2f} s each")


def _executed_so_far(running: list[tuple[Course, object, subprocess.Popen[bytes]]]) -> int:
    """Submissions each worker has finished: those it announced, less the one it is still on."""
    done = 0
    for worker, _, process in running:
        started = (worker.root / "nbgrader.log").read_text(errors="replace").count("] Autograding ")
        done += max(0, started - (1 if process.poll() is None else 0))
    return done


def _show_progress(running: list[tuple[Course, object, subprocess.Popen[bytes]]], total: int) -> None:
    """A progress line with counts and an ETA until every worker has ended."""
    start, shown, tty = time.monotonic(), -1, sys.stdout.isatty()
    while True:
        finished = all(process.poll() is not None for _, _, process in running)
        done = total if finished else _executed_so_far(running)
        if done != shown:
            elapsed = time.monotonic() - start
            eta = f", about {elapsed / done * (total - done):.0f} s left" if 0 < done < total else ""
            line = f"executed {done}/{total} ({elapsed:.0f} s{eta})"
            print(f"\r{line}" if tty else line, end="" if tty else "\n", flush=True)
            shown = done
        if finished:
            if tty:
                print()
            return
        time.sleep(0.5)
