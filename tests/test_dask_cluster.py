"""A real Dask cluster on loopback (`dask scheduler` and two `dask worker` processes) grades like a local run."""

from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import psutil
import pytest

from coursekit import ASSIGNMENT
from coursekit.course import cohort
from coursekit.course.directory import Course
from coursekit.engine import grading
from coursekit.engine.runners import DaskRunner
from coursekit.engine.workers import WORKER_CRASH, pending
from coursekit.exports import scores

from .conftest import copy_course

pytestmark = pytest.mark.slow

# Some right, some with mistakes in each part: model, loss, training.
STUDENTS = ["correct_reference", "correct_noisy", "loss_sum", "model_no_bias", "train_global_model", "loss_numpy"]
DASK = str(Path(sys.executable).with_name("dask"))


def _course(root: Path) -> Course:
    course = copy_course(root)
    course.nbgrader("generate_assignment", ASSIGNMENT, "--force", quiet=True)
    for student in STUDENTS:
        course.submit(student, course.demo_notebook(student))
    return course


def _wait_for(condition: object, what: str, processes: list[subprocess.Popen[bytes]], timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while not condition():  # type: ignore[operator]
        for process in processes:
            if process.poll() is not None:
                raise AssertionError(f"{process.args} ended with exit code {process.returncode} before {what}")
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.2)


@pytest.fixture(scope="module")
def scheduler(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """`dask scheduler` and two `dask worker --nthreads 1` on 127.0.0.1, random ports, for this file's tests (a
    worker killed by a test is restarted by its nanny); all stopped after."""
    tmp_path = tmp_path_factory.mktemp("dask")
    env = Course(tmp_path).environment()  # .venv first on PATH: nbgrader, kernels, coursekit
    info = tmp_path / "scheduler.json"
    logs = tmp_path / "logs"
    logs.mkdir()
    started: list[subprocess.Popen[bytes]] = []

    def start(name: str, *args: str) -> subprocess.Popen[bytes]:
        with open(logs / f"{name}.log", "wb") as log:
            started.append(subprocess.Popen([DASK, *args], cwd=tmp_path, env=env, stdout=log, stderr=log))
        return started[-1]

    try:
        start("scheduler", "scheduler", "--host", "127.0.0.1", "--port", "0", "--no-dashboard",
              "--scheduler-file", str(info))
        _wait_for(lambda: info.exists() and info.stat().st_size > 0, "the scheduler's address", started)
        address = json.loads(info.read_text())["address"]
        assert address.startswith("tcp://127.0.0.1:")
        for index in range(2):
            start(f"worker{index}", "worker", address, "--nthreads", "1", "--host", "127.0.0.1", "--no-dashboard",
                  "--name", f"worker{index}", "--local-directory", str(tmp_path / f"worker{index}"))
        from distributed import Client

        with Client(address, timeout="30s") as client:
            client.wait_for_workers(2, timeout=90)
        yield address
    finally:
        family = {p.pid: p for p in started}
        for process in started:
            try:
                for child in psutil.Process(process.pid).children(recursive=True):
                    family[child.pid] = child
            except psutil.NoSuchProcess:
                pass
        for process in reversed(started):  # workers first, then the scheduler
            process.terminate()
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        alive = [p for p in family.values() if isinstance(p, psutil.Process) and p.is_running()
                 and p.status() != psutil.STATUS_ZOMBIE]
        for process in alive:
            process.kill()
        assert not alive, f"left running after the cluster stopped: {[p.cmdline() for p in alive]}"
        for log in sorted(logs.iterdir()):
            sys.stderr.write(f"--- {log.name}\n{log.read_text(errors='replace')[-2000:]}\n")


def test_a_dask_cluster_scores_exactly_like_a_local_run(scheduler: str, graded: Course, tmp_path: Path) -> None:
    """Scores equal the demo course's (`graded`: the same notebooks, graded on this machine's workers)."""
    on_dask = _course(tmp_path / "dask")
    broken = on_dask.submitted_notebook("broken_json")
    broken.parent.mkdir(parents=True)
    broken.write_text('{"cells": [')  # graded blank by intake, with the reason, and no harm to the others
    summary = grading.grade(on_dask, pending(on_dask, force=False), DaskRunner(scheduler))
    assert sorted(summary.graded) == sorted([*STUDENTS, "broken_json"])
    assert not summary.failed and "JSON" in summary.blank["broken_json"]
    dask_scores, local_scores = scores.cell_scores(on_dask.db_url), scores.cell_scores(graded.db_url)
    assert sum(dask_scores.pop("broken_json").values()) == 0
    assert dask_scores == {student: local_scores[student] for student in STUDENTS}
    expected = cohort.expected_scores(scores.max_cell_points(on_dask.db_url))
    assert dask_scores == {student: expected[student] for student in STUDENTS}
    # The coordinator wrote the autograded notebooks here; the workers only sent them back.
    assert sorted(p.name for p in on_dask.autograded.iterdir() if p.is_dir()) == sorted([*STUDENTS, "broken_json"])
    assert pending(on_dask, force=False) == []


def _alive(process: psutil.Process) -> bool:
    try:
        return process.is_running() and process.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def _mid_notebook(worker_pids: Iterable[int]) -> tuple[int, list[psutil.Process]] | None:
    """A worker process whose executor (nbgrader) is running a notebook on a kernel: its pid and every process it
    started."""
    for pid in worker_pids:
        try:
            family = psutil.Process(pid).children(recursive=True)
            nbgrader = [p for p in family if p.ppid() == pid and "coursekit.engine.autograder" in p.cmdline()]
            warm = [p for p in family if p.ppid() == pid and "coursekit.kernels.warm_kernels" in p.cmdline()]
            kernels = [p for p in family if warm and p.ppid() == warm[0].pid]
        except psutil.Error:
            continue
        if nbgrader and kernels and all(_alive(p) for p in nbgrader + kernels):
            return pid, family
    return None


def _rows_per_student(course: Course) -> dict[str, tuple[int, int, int]]:
    """(submissions, submitted notebooks, grades) per student in the SQLite gradebook, after an integrity check."""
    with contextlib.closing(sqlite3.connect(course.root / "gradebook.db")) as db:
        assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        rows = db.execute(
            "SELECT submitted_assignment.student_id, COUNT(DISTINCT submitted_assignment.id), "
            "COUNT(DISTINCT submitted_notebook.id), COUNT(grade.id) FROM submitted_assignment "
            "LEFT JOIN submitted_notebook ON submitted_notebook.assignment_id = submitted_assignment.id "
            "LEFT JOIN grade ON grade.notebook_id = submitted_notebook.id GROUP BY submitted_assignment.student_id"
        ).fetchall()
    return {student: (submissions, notebooks, grades) for student, submissions, notebooks, grades in rows}


def _grade_killing_a_worker(course: Course, scheduler: str, out: io.StringIO) -> grading.Summary:
    """Grade the pending students, one per task; SIGKILL a Dask worker process while its nbgrader runs a notebook.

    What the OOM killer or `kill -9` does: the worker's nbgrader, warm parent and kernels are orphaned (its
    nanny starts a new worker process). They must all end on their own, and the warm parent's folder go.
    """
    from distributed import Client

    with Client(scheduler, timeout="30s") as client:
        client.wait_for_workers(2, timeout=90)  # the nanny's new worker, after an earlier kill
        worker_pids = list(client.run(os.getpid).values())
    with ThreadPoolExecutor(1) as pool:
        run = pool.submit(grading.grade, course, pending(course, force=False), DaskRunner(scheduler), 1, out)
        deadline = time.monotonic() + 120
        while (found := _mid_notebook(worker_pids)) is None:
            assert not run.done(), f"the run ended before a worker could be killed mid-notebook:\n{out.getvalue()}"
            assert time.monotonic() < deadline, f"no worker ran a notebook in time:\n{out.getvalue()}"
            time.sleep(0.05)
        worker, orphans = found
        warm_folder = next(Path(p.cmdline()[-1]).parent for p in orphans
                           if "coursekit.kernels.warm_kernels" in p.cmdline())
        os.kill(worker, signal.SIGKILL)
        killed_at = time.monotonic()
        summary = run.result(timeout=300)
    out.write(f"--- the run ended {time.monotonic() - killed_at:.0f} s after the kill\n")
    while [p for p in orphans if _alive(p)] and time.monotonic() < killed_at + 30:
        time.sleep(0.2)
    assert not [p.cmdline() for p in orphans if _alive(p)], "orphans of the killed worker still running"
    assert not warm_folder.exists(), "the orphaned warm parent left its folder"
    assert len(summary.graded) == len(set(summary.graded)), f"a student recorded twice: {summary.graded}"
    return summary


def test_a_worker_killed_mid_chunk_loses_no_grade_and_leaves_nothing_running(scheduler: str, tmp_path: Path) -> None:
    """Dask retries a killed worker's task elsewhere; when it gives up (KilledWorker), a rerun grades the rest."""
    from distributed import Client

    course = _course(tmp_path / "course")
    for student in STUDENTS[4:]:  # for the second run
        shutil.rmtree(course.submitted / student)
    out = io.StringIO()
    try:
        # distributed's default allowed-failures (3): the lost task runs again on another worker.
        first = _grade_killing_a_worker(course, scheduler, out)
        assert sorted(first.graded) == sorted(STUDENTS[:4]) and not first.failed, out.getvalue()

        # allowed-failures 0 (DASK_DISTRIBUTED__SCHEDULER__ALLOWED_FAILURES on a real scheduler): the task fails.
        with Client(scheduler, timeout="30s") as client:
            client.run_on_scheduler(lambda dask_scheduler: setattr(dask_scheduler, "allowed_failures", 0))
        for student in STUDENTS[4:]:
            course.submit(student, course.demo_notebook(student))
        second = _grade_killing_a_worker(course, scheduler, out)
        assert second.failed, out.getvalue()
        assert all(why == WORKER_CRASH and "KilledWorker" in detail for why, detail in second.failed.values()), \
            second.failed
        assert sorted(second.graded + list(second.failed)) == sorted(STUDENTS[4:])
        assert pending(course, force=False) == sorted(second.failed)  # ungraded, so the next run tries them
        rerun = grading.grade_course(course, force=False, workers=1, scheduler=scheduler, chunk=1, out=out)
        assert sorted(rerun.graded) == sorted(second.failed) and not rerun.failed
    finally:
        sys.stderr.write(out.getvalue())

    assert pending(course, force=False) == []
    maxima = scores.max_cell_points(course.db_url)
    expected = cohort.expected_scores(maxima)
    assert scores.cell_scores(course.db_url) == {student: expected[student] for student in STUDENTS}
    assert _rows_per_student(course) == dict.fromkeys(STUDENTS, (1, 1, len(maxima))), "a grade lost or duplicated"
