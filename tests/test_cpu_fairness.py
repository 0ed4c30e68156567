"""A CPU hog graded beside an honest student, both on one core: the honest student's grade stays exact.

Each kernel has a CPU cgroup of its own (coursekit/kernels/sandbox.py: a quota of `Limits.cpus` cores and the default
weight), so a submission that starts a hundred busy processes counts as one process beside the others.
Before this, such a submission made an honest student graded at the same time run out of time (19 became 14).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import pytest

from coursekit import ASSIGNMENT
from coursekit.course import cohort
from coursekit.exports import scores
from coursekit.kernels import sandbox

from .adversarial import bounds
from .conftest import copy_course

NEEDS_CPU_CGROUP = pytest.mark.skipif(os.geteuid() != 0 or not sandbox.cgroup_folders("probe").get("cpu share"),
                                      reason="needs root and a cpu cgroup, as kernels get their CPU share from one")

HONEST = "correct_reference"
SPINNER = "cpu_spinner"
CELL_TIMEOUT = 30  # an honest cell takes a second or two alone on this core; with 1/100 of it, minutes
SPIN = bounds.spinners(spin=20, sleep=22)  # with the spinners starving the kernel a little, under the limit
# The spinner's second burst says when it ended, in its own (kept) output: the honest student must be graded by then.
SPUN_UNTIL = "spun until "
ONE_CORE = str(min(os.sched_getaffinity(0)))


def test_cpu_share_and_process_limit_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    assert sandbox.Limits().processes == 128 and sandbox.Limits().cpus == 1.0
    monkeypatch.setenv("COURSEKIT_SANDBOX_CPUS", "0.5")
    monkeypatch.setenv("COURSEKIT_SANDBOX_PROCESSES", "300")
    limits = sandbox.Limits.from_env()
    assert limits.cpus == 0.5 and limits.processes == 300


@NEEDS_CPU_CGROUP
def test_a_confined_kernel_reports_its_cpu_share() -> None:
    report = sandbox.probe(sandbox.Limits(cpus=0.5))
    assert report.held["cpu share"].startswith("0.5 core (cgroup"), report.line()


@pytest.mark.slow
@pytest.mark.serial  # a core shared with a second xdist worker would change what is measured
@NEEDS_CPU_CGROUP
def test_an_honest_student_beside_a_spinner_on_one_core_keeps_exact_scores(tmp_path: Path) -> None:
    course = copy_course(tmp_path / "course")
    release = nbformat.read(course.release_notebook, as_version=4)
    spinner = cohort.fill(release, cohort.Student(SPINNER, "busy processes"))
    # Two bursts of 20 s from the start of the spinner's notebook: the honest student, graded beside it, is done
    # before the second ends (asserted below), so a third burst later on (there was one) only made the run longer.
    fork, release_spinners = SPIN
    bounds.insert_before("test_model_variables", fork, release_spinners)(spinner)
    bounds.insert_before("test_loss_values", fork,
                         release_spinners + f"print({SPUN_UNTIL!r} + repr(_time.time()))\n")(spinner)
    path = tmp_path / f"{ASSIGNMENT}.ipynb"
    nbformat.write(spinner, path)
    course.submit(SPINNER, path)
    course.submit(HONEST, course.demo_notebook(HONEST))
    course.nbgrader("generate_assignment", ASSIGNMENT, "--force", quiet=True)
    pin = ["taskset", "-c", ONE_CORE] if shutil.which("taskset") else []
    start = time.monotonic()
    result = subprocess.run(
        [*pin, sys.executable, "-m", "coursekit.cli", "grade", "--workers", "2"], cwd=course.root,
        env={**course.environment(), "COURSEKIT_CELL_TIMEOUT": str(CELL_TIMEOUT),
             "COURSEKIT_SUBMISSION_DEADLINE": "240"},
        text=True, capture_output=True, timeout=900, check=False,
    )
    elapsed = time.monotonic() - start
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    maxima = scores.max_cell_points(course.db_url)
    got = scores.cell_scores(course.db_url)
    print(f"\ngraded the spinner and {HONEST} on core {ONE_CORE} in {elapsed:.0f} s; "
          f"{HONEST}: {sum(got[HONEST].values()):g}/{sum(maxima.values()):g}, "
          f"spinner: {sum(got[SPINNER].values()):g}")
    assert got[HONEST] == cohort.expected_scores(maxima)[HONEST]
    # The honest notebook was written (so graded) while the spinners still spun: they did compete for the core.
    spun = nbformat.read(course.autograded / SPINNER / ASSIGNMENT / f"{ASSIGNMENT}.ipynb", as_version=4)
    printed = [line for cell in spun.cells for output in cell.get("outputs", [])
               for line in str(output.get("text", "")).splitlines() if line.startswith(SPUN_UNTIL)]
    assert len(printed) == 1, "the spinner's second burst did not run to its end"
    honest_written = (course.autograded / HONEST / ASSIGNMENT / f"{ASSIGNMENT}.ipynb").stat().st_mtime
    assert honest_written < float(printed[0][len(SPUN_UNTIL):]), "the honest student was graded after the spinning"
