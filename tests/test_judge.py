"""Fast tests of judging outside the kernel and of putting tampered assignment cells back (no kernel)."""

from __future__ import annotations

import copy

import nbformat
import pytest
from nbformat import NotebookNode

from coursekit import ASSIGNMENT
from coursekit.course.directory import Course
from coursekit.steps.judge import NOT_RUN, RESOURCE_KEY, TAMPERED, JudgeObservations, inject, is_observed
from coursekit.steps.restore_cells import RestoreAssignmentCells
from grader_observe import MIME

from .conftest import REPO

RESOURCES = {"nbgrader": {"assignment": ASSIGNMENT, "notebook": ASSIGNMENT}}
NONCE = "0123456789abcdef"
# What the observer records for a correct loss on the known values (the random cases are checked too).
KNOWN_LOSS = {"shape": [], "size": 1, "data": [5.25]}


def _grade_ids(notebook: NotebookNode) -> list[str]:
    return [c.metadata["nbgrader"]["grade_id"] for c in notebook.cells if "nbgrader" in c.metadata]


def _restore(notebook: NotebookNode) -> NotebookNode:
    restore = RestoreAssignmentCells(release_root=str(REPO / "release"))
    return restore.preprocess(notebook, copy.deepcopy(RESOURCES))[0]


def _is_test(cell: NotebookNode) -> bool:
    meta = cell.metadata.get("nbgrader", {})
    return bool(meta.get("grade")) and not meta.get("solution")


def test_deleted_assignment_cells_are_put_back_in_place(repo_course: Course) -> None:
    release = nbformat.read(repo_course.release_notebook, as_version=4)
    submitted = copy.deepcopy(release)
    submitted.cells = [c for c in submitted.cells if not _is_test(c)]
    restored = _restore(submitted)
    assert [c.source for c in restored.cells] == [c.source for c in release.cells]
    # Every protected cell gone: they come back in their order (the prose around them cannot place them).
    submitted.cells = [c for c in submitted.cells if "nbgrader" not in c.metadata]
    assert _grade_ids(_restore(submitted)) == _grade_ids(release)


def test_points_and_flags_come_back_and_foreign_graded_cells_lose_their_metadata(repo_course: Course) -> None:
    release = nbformat.read(repo_course.release_notebook, as_version=4)
    submitted = copy.deepcopy(release)
    for cell in submitted.cells:
        meta = cell.metadata.get("nbgrader", {})
        if meta.get("grade"):
            meta["points"] = 1000
        if meta.get("grade_id") == "test_loss_values":
            meta["grade"] = False
    extra = nbformat.v4.new_code_cell("print('mine')")
    extra.metadata["nbgrader"] = {"grade": True, "grade_id": "my_bonus", "points": 50, "solution": False,
                                  "locked": False, "schema_version": 3}
    submitted.cells.append(extra)
    restored = _restore(submitted)
    assert [c.metadata.get("nbgrader") for c in restored.cells[:-1]] == [
        c.metadata.get("nbgrader") for c in release.cells
    ]
    assert "nbgrader" not in restored.cells[-1].metadata


def _test_cell(*outputs: NotebookNode) -> NotebookNode:
    cell = nbformat.v4.new_code_cell('from grader_observe import observe\nvisible_tests = observe("test_loss_values", '
                                     "globals())\nvisible_tests()")
    cell.metadata["nbgrader"] = {"grade": True, "grade_id": "test_loss_values", "points": 2, "solution": False,
                                 "locked": True, "schema_version": 3}
    cell.outputs = list(outputs)
    return cell


def _bundle(observation: dict, nonce: str = NONCE, grade_id: str = "test_loss_values") -> NotebookNode:
    bundle = {"grade_id": grade_id, "nonce": nonce, "observation": observation}
    return nbformat.v4.new_output("display_data", data={MIME: bundle, "text/plain": "observation"})


def _judge(cell: NotebookNode, cleared: tuple[int, ...] = ()) -> list[NotebookNode]:
    notebook = nbformat.v4.new_notebook(cells=[cell])
    resources = {RESOURCE_KEY: {"nonce": NONCE, "cleared": list(cleared)}}
    return JudgeObservations().preprocess(notebook, resources)[0].cells[0].outputs


@pytest.fixture(scope="module")
def correct_loss_observation() -> dict:
    from grader_observe.kernel import collect
    from tests.test_checks import namespace

    return collect("test_loss_values", namespace())


def test_the_judge_decides_from_the_observation_alone(correct_loss_observation: dict) -> None:
    printed = nbformat.v4.new_output("stream", name="stdout", text="Hidden tests passed:\n  ✓ everything\n")
    outputs = _judge(_test_cell(printed, _bundle(correct_loss_observation)))
    assert [o.output_type for o in outputs] == ["stream"]
    assert outputs[0].text.startswith("Hidden tests passed:\n  ✓ loss([1, 2, 3, 4]")
    wrong = dict(correct_loss_observation, known={"shape": [], "size": 1, "data": [2.29129]})
    outputs = _judge(_test_cell(printed, _bundle(wrong)))
    assert [o.output_type for o in outputs] == ["error"] and "square root" in outputs[0].evalue


@pytest.mark.parametrize(
    "outputs",
    [
        [],  # the kernel died, or the observer never ran
        [nbformat.v4.new_output("stream", name="stdout", text="Hidden tests passed:\n")],  # printed by the student
        [nbformat.v4.new_output("error", ename="CheckFailed", evalue="x", traceback=[])],
    ],
)
def test_a_cell_without_an_observation_earns_nothing(outputs: list[NotebookNode]) -> None:
    judged = _judge(_test_cell(*outputs))
    assert [(o.output_type, o.get("evalue")) for o in judged] == [("error", NOT_RUN)]


def test_forged_observations_earn_nothing(correct_loss_observation: dict) -> None:
    forged = {"known": KNOWN_LOSS}
    for other in (_bundle(forged, nonce=""), _bundle(forged, nonce="guess"), _bundle(forged, grade_id="test_x")):
        assert _judge(_test_cell(other))[0].evalue == NOT_RUN
    # One with this run's nonce beside the observer's: more than one record, the cell earns nothing.
    two = _judge(_test_cell(_bundle(correct_loss_observation), _bundle(correct_loss_observation)))
    assert two[0].evalue == TAMPERED
    assert _judge(_test_cell(_bundle(correct_loss_observation)), cleared=(0,))[0].evalue == TAMPERED
    assert _judge(_test_cell(_bundle(forged)))[0].output_type == "error"  # incomplete: random inputs missing


def test_injection_adds_only_the_nonce_and_still_compiles(repo_course: Course) -> None:
    source = nbformat.read(repo_course.source_notebook, as_version=4)
    observed = [cell for cell in source.cells if is_observed(cell)]
    assert len(observed) == 11
    for cell in observed:
        injected = inject(cell.source, NONCE)
        assert f"nonce={NONCE!r}" in injected
        # Nothing else of the grader's reaches the student's kernel: no stand-in, no verdict so far.
        assert injected.replace(f", nonce={NONCE!r}", "") == cell.source
        compile(injected, "<test cell>", "exec")
