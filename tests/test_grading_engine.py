"""Fast checks of the grading engine's own pieces (no kernels): chunking, bad notebooks, the summary."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from coursekit.engine import autograder, grading, workers
from coursekit.engine.workers import BAD_NOTEBOOK, NBGRADER_ERROR, ChunkResult

# What nbgrader logs at ERROR level while it fails one student (nbgrader/converters/base.py).
NBGRADER_ERRORS = [
    "There was an error processing assignment: /tmp/x/submitted/bob/hw",
    'Traceback (most recent call last):\n  File "nbgrader/converters/base.py", line 1, in convert_notebooks\n'
    "nbformat.validator.NotebookValidationError: 'cells' is a required property\n",
]


def test_a_chunk_of_unreadable_notebooks_fails_each_as_a_bad_notebook_without_running_nbgrader() -> None:
    results = workers.execute_chunk({"nbgrader_config.py": b""}, {"ann": b"{not json", "bob": b"\xff\xfe"})
    assert {s: r.failure for s, r in results.items()} == {"ann": BAD_NOTEBOOK, "bob": BAD_NOTEBOOK}
    assert "JSON" in results["ann"].reason and results["ann"].notebook is None


@pytest.mark.parametrize("name", ["../outside.py", "/etc/passwd", "source/../../x"])
def test_a_bundle_cannot_write_outside_its_scratch_course(tmp_path: Path, name: str) -> None:
    with pytest.raises(ValueError, match="leaves the scratch course"):
        workers._unpack({name: b"x"}, tmp_path / "course")
    assert not (tmp_path / "outside.py").exists()


def test_the_reason_of_an_nbgrader_error_is_the_last_line_of_its_traceback() -> None:
    assert autograder._reason(NBGRADER_ERRORS) == (
        "nbformat.validator.NotebookValidationError: 'cells' is a required property"
    )
    assert autograder._reason(["the gradebook is locked"]) == "the gradebook is locked"
    assert autograder._reason([]) == "nbgrader autograde failed"


@pytest.mark.parametrize(("students", "slots", "size"), [(1, 2, 1), (6, 2, 1), (30, 2, 2), (1000, 2, 4), (30, 64, 1)])
def test_chunks_keep_every_slot_busy_and_stay_small(students: int, slots: int, size: int) -> None:
    assert grading.chunk_size(students, slots) == size


def test_the_summary_says_how_many_were_graded_and_why_the_others_failed() -> None:
    summary = grading.Summary(total=4, graded=["ann", "cat"], elapsed=10.0, interrupted=True,
                              failed={"bob": (NBGRADER_ERROR, "NotebookValidationError: 'cells'")},
                              execution_seconds={"ann": 1.5, "cat": 2.5})
    table = summary.table()
    assert "first grade after" not in table  # too few recorded after the first to tell a rate
    assert "graded                        2" in table
    assert "failed                        1" in table
    assert "not graded (stopped)          1" in table
    assert "3.33 s per submission" in table and "2.00 s per submission on a worker" in table
    assert "bob  nbgrader error" in table and "NotebookValidationError" in table


def test_the_summary_gives_the_rate_after_start_up() -> None:
    summary = grading.Summary(total=10, graded=[f"s{i}" for i in range(10)], elapsed=30.0, first_recorded=(12.0, 2))
    assert summary.steady_rate() == pytest.approx(18.0 / 8)
    assert "first grade after 12 s, then 2.25 s per submission" in summary.table()


def test_progress_prints_counts_and_an_eta_a_line_per_change_when_not_a_terminal() -> None:
    out = io.StringIO()
    progress = grading.Progress(total=4, out=out)
    summary = grading.Summary(total=4)
    progress.update(summary, executing=4)
    summary.graded.append("ann")
    progress.update(summary, executing=3)
    progress.update(summary, executing=3)  # nothing new: no new line
    lines = out.getvalue().splitlines()
    assert len(lines) == 2
    assert lines[1].startswith("[#######") and "1/4 (1 graded; 3 with workers;" in lines[1] and "s left" in lines[1]


def test_chunk_results_travel_as_plain_data() -> None:
    import pickle

    result = ChunkResult("ann", b"{}", seconds=1.0)
    assert pickle.loads(pickle.dumps(result)) == result


@pytest.mark.slow
def test_an_executor_replaced_mid_run_grades_like_the_first(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Executors are replaced after RECYCLE_AFTER submissions; the next one picks up where it left off."""
    from coursekit import ASSIGNMENT
    from coursekit.course import cohort
    from coursekit.exports import scores

    from .conftest import copy_course

    students = ["correct_reference", "loss_sum", "model_no_bias"]
    course = copy_course(tmp_path)
    course.nbgrader("generate_assignment", ASSIGNMENT, "--force", quiet=True)
    for student in students:
        course.submit(student, course.demo_notebook(student))
    started: list[Path] = []
    original = workers._Executor.__init__

    def counting(self: workers._Executor, bundle: dict[str, bytes], fingerprint: str,
                 warm: dict[str, str] | None = None) -> None:
        original(self, bundle, fingerprint, warm)
        started.append(self.root)

    monkeypatch.setattr(workers._Executor, "RECYCLE_AFTER", 1)
    monkeypatch.setattr(workers._Executor, "__init__", counting)
    monkeypatch.chdir(course.root)  # the warm parent takes the course's environment from here
    summary = grading.grade_course(course, force=True, workers=1, chunk=1, out=io.StringIO())

    assert sorted(summary.graded) == sorted(students) and not summary.failed
    assert len(started) == len(students)  # one executor a submission: each replaced the one before
    assert not [root for root in started if root.exists()], "a replaced executor left its scratch course"
    expected = cohort.expected_scores(scores.max_cell_points(course.db_url))
    assert scores.cell_scores(course.db_url) == {s: expected[s] for s in students}
