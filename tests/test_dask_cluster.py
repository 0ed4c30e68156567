"""A real Dask cluster on loopback (`dask scheduler` and two `dask worker` processes) grades like a local run."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from coursekit import ASSIGNMENT, cohort, grading, scores
from coursekit.course import Course
from coursekit.runners import DaskRunner
from coursekit.workers import BAD_NOTEBOOK, pending

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


@pytest.fixture
def scheduler(tmp_path: Path) -> Iterator[str]:
    """`dask scheduler` and two `dask worker --nthreads 1` on 127.0.0.1, random ports; all stopped after."""
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


def test_a_dask_cluster_scores_exactly_like_a_local_run(scheduler: str, tmp_path: Path) -> None:
    on_dask = _course(tmp_path / "dask")
    here = Course(Path(shutil.copytree(on_dask.root, tmp_path / "local")))
    broken = on_dask.submitted_notebook("broken_json")
    broken.parent.mkdir(parents=True)
    broken.write_text('{"cells": [')  # a failure reported from a worker, and no harm to the others
    summary = grading.grade(on_dask, pending(on_dask, force=False), DaskRunner(scheduler))
    assert sorted(summary.graded) == sorted(STUDENTS)
    assert summary.failed == {"broken_json": (BAD_NOTEBOOK, summary.failed["broken_json"][1])}
    assert "JSON" in summary.failed["broken_json"][1]
    grading.grade_course(here, force=False, workers=2)
    dask_scores, local_scores = scores.cell_scores(on_dask.db_url), scores.cell_scores(here.db_url)
    assert dask_scores == local_scores
    expected = cohort.expected_scores(scores.max_cell_points(here.db_url))
    assert dask_scores == {student: expected[student] for student in STUDENTS}
    # The coordinator wrote the autograded notebooks here; the workers only sent them back.
    assert sorted(p.name for p in on_dask.autograded.iterdir() if p.is_dir()) == sorted(STUDENTS)
    assert pending(on_dask, force=False) == ["broken_json"]  # the next run tries it again
