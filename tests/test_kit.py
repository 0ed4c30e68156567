"""Fast unit tests of the kit's own pieces: the autograde step, scores, the cohort, the CLI."""

from __future__ import annotations

import json

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_notebook, new_output

from coursekit import ASSIGNMENT, cli
from coursekit.course import cohort
from coursekit.course.directory import Course
from coursekit.exports import scores
from coursekit.steps.preprocessors import SanitizeTestOutputs


def _cell(grade: bool, solution: bool) -> nbformat.NotebookNode:
    cell = new_code_cell("x = 1")
    cell.metadata["nbgrader"] = {"grade": grade, "solution": solution, "grade_id": "c", "points": 1, "locked": False}
    cell.outputs = [
        new_output("stream", name="stderr", text="W tensorflow warning\n"),
        new_output("error", ename="CheckFailed", evalue="loss is 1000x", traceback=["frame 1", "frame 2 in checks.py"]),
    ]
    return cell


def test_sanitize_moves_stderr_and_trims_tracebacks_of_test_cells_only() -> None:
    notebook = new_notebook(cells=[_cell(grade=True, solution=False), _cell(grade=False, solution=True)])
    notebook, _ = SanitizeTestOutputs().preprocess(notebook, {})
    test, answer = notebook.cells
    assert test.outputs[0].name == "stdout"
    assert test.outputs[1].traceback == ["CheckFailed: loss is 1000x"]
    assert answer.outputs[0].name == "stderr"
    assert answer.outputs[1].traceback == ["frame 1", "frame 2 in checks.py"]


def test_groups_and_table() -> None:
    assert scores.group_of("test_train_state") == "train"
    with pytest.raises(ValueError, match="no group"):
        scores.group_of("test_other")
    maxima = {"test_model_a": 2.0, "test_loss_a": 2.0, "test_train_a": 3.0, "test_convergence_a": 2.0,
              "test_plot_a": 1.0}
    text = scores.table({"ann": {**maxima, "test_loss_a": 0.0}}, maxima, ["ann"])
    header, _rule, row = text.splitlines()
    assert header.split() == ["student", "model", "/2", "loss", "/2", "train", "/3", "convergence", "/2",
                              "plot", "/1", "total", "/10"]
    assert row.split() == ["ann", "2", "0", "3", "2", "1", "8"]


def test_cohort_fills_exactly_the_three_solution_cells(repo_course: Course) -> None:
    release = nbformat.read(repo_course.release_notebook, as_version=4)
    student = next(s for s in cohort.STUDENTS if s.student_id == "loss_sum")
    filled = cohort.fill(release, student)
    changed = [(a.metadata.get("nbgrader", {}).get("grade_id"), b.source)
               for a, b in zip(release.cells, filled.cells, strict=True) if a.source != b.source]
    assert [grade_id for grade_id, _ in changed] == ["model", "loss", "train"]
    assert "reduce_sum" in changed[1][1]


def test_committed_cohort_matches_its_definition(repo_course: Course) -> None:
    release = nbformat.read(repo_course.release_notebook, as_version=4)
    on_disk = sorted(p.name for p in repo_course.demo_cohort.iterdir())
    assert on_disk == sorted(s.student_id for s in cohort.STUDENTS)
    for student in cohort.STUDENTS:
        path = repo_course.demo_cohort / student.student_id / ASSIGNMENT / f"{ASSIGNMENT}.ipynb"
        assert json.loads(path.read_text()) == json.loads(nbformat.writes(cohort.fill(release, student))), (
            f"{path} is stale: run `make cohort`"
        )


def test_cohort_has_enough_distinct_mistakes() -> None:
    mistakes = [s for s in cohort.STUDENTS if s.loses]
    parts = {g.split("_")[1] for s in mistakes for g in s.loses}
    assert len(mistakes) >= 15 and {"model", "loss", "train"} <= parts
    assert len({(s.model, s.loss, s.train) for s in cohort.STUDENTS}) == len(cohort.STUDENTS)


def test_cli_help_lists_every_step(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        cli.main(["--help"])
    out = capsys.readouterr().out
    for command in ("release", "grade", "feedback", "export", "scores", "demo"):
        assert command in out


def test_grade_with_nothing_submitted_says_what_to_do(tmp_path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "source" / ASSIGNMENT).mkdir(parents=True)
    assert cli.main(["grade"], course=Course(tmp_path)) == 1
    assert "nothing to grade: put submissions in submitted/<student>/" in capsys.readouterr().err


def test_messages_get_a_sentence_a_line_but_numbers_and_clauses_stay_whole() -> None:
    from coursekit.steps.preprocessors import one_sentence_a_line

    message = ("CheckFailed: loss on known values returned 21; expected 5.25 (the mean squared error). That is "
               "4x the expected value: did you sum? Use tf.reduce_mean.")
    assert one_sentence_a_line(message).splitlines() == [
        "CheckFailed: loss on known values returned 21; expected 5.25 (the mean squared error).",
        "That is 4x the expected value: did you sum?",
        "Use tf.reduce_mean.",
    ]


def test_late_penalty_counts_started_days_and_never_exceeds_the_score() -> None:
    from coursekit.course.late import LatePenalty

    plugin = LatePenalty(percent_per_day=10)
    assert plugin.late_submission_penalty("s", 17.0, 1) == 1.7
    assert plugin.late_submission_penalty("s", 17.0, 24 * 3600 + 1) == 3.4
    assert plugin.late_submission_penalty("s", 17.0, 30 * 24 * 3600) == 17.0
    assert LatePenalty().late_submission_penalty("s", 17.0, 3600) is None  # nbgrader's default: no penalty
    assert LatePenalty(penalty_method="zero").late_submission_penalty("s", 17.0, 3600) == 17.0


def test_table_shows_the_late_penalty_and_the_total_after_it() -> None:
    maxima = {"test_model_a": 2.0, "test_loss_a": 2.0, "test_train_a": 3.0, "test_convergence_a": 2.0,
              "test_plot_a": 1.0}
    text = scores.table({"ann": maxima, "bob": maxima}, maxima, ["ann", "bob"], {"ann": 2.5, "bob": 0.0})
    header, _rule, ann, bob = text.splitlines()
    assert header.split()[-3:] == ["late", "total", "/10"]
    assert ann.split()[-2:] == ["-2.5", "7.5"] and bob.split()[-2:] == ["0", "10"]
    assert "late" not in scores.table({"ann": maxima}, maxima, ["ann"], {"ann": 0.0})
