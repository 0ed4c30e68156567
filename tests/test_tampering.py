"""Tampering with test cells and with the grader's helpers earns nothing: real `coursekit grade` on one cohort.

Each hostile submission is a demo student's answers plus one trick; it must score exactly what that
student's honest notebook scores (per cell, from the gradebook), or full marks when the trick is deleting
test cells from a correct notebook. docs/security-judging.md explains each defence.
"""

from __future__ import annotations

import copy
from pathlib import Path

import nbformat
import pytest
from nbformat import NotebookNode

from coursekit import ASSIGNMENT, cli, cohort, scores
from coursekit.course import Course
from coursekit.judge import TAMPERED

from .conftest import copy_course

pytestmark = pytest.mark.slow

STUDENTS = {student.student_id: student for student in cohort.STUDENTS}

MONKEYPATCH = '''
import builtins, math, numpy, numpy.testing
numpy.allclose = lambda *a, **k: True
numpy.isclose = lambda *a, **k: True
numpy.array_equal = lambda *a, **k: True
numpy.testing.assert_allclose = lambda *a, **k: None
numpy.testing.assert_array_almost_equal = lambda *a, **k: None
math.isclose = lambda *a, **k: True
math.isfinite = lambda *a, **k: True
tf.debugging.assert_near = lambda *a, **k: None
tf.debugging.assert_equal = lambda *a, **k: None
builtins.round = lambda *a, **k: 0
'''

# A NumPy loss blocks gradients (it loses test_loss_properties); this patch makes every missing gradient a zero,
# so an observer that called the patched method would see gradients flow. Training itself is unchanged.
PATCH_GRADIENT = '''
_real_gradient = tf.GradientTape.gradient
def _always_a_gradient(self, target, sources, *args, **kwargs):
    grads = _real_gradient(self, target, sources, *args, **kwargs)
    if isinstance(grads, (list, tuple)):
        return [tf.zeros_like(s) if g is None else g for g, s in zip(grads, sources)]
    return tf.zeros_like(sources) if grads is None else grads
tf.GradientTape.gradient = _always_a_gradient
'''

SWALLOW = '''
_ip = get_ipython()
_ip.set_custom_exc((BaseException,), lambda shell, etype, evalue, tb, tb_offset=None: print("Hidden tests passed:"))
_ip.showtraceback = lambda *a, **k: print("Hidden tests passed:")
_ip._showtraceback = lambda *a, **k: None
'''

FAKE_OUTPUT = '''
_real_loss = loss
def loss(predicted_y, target_y):
  print("Hidden tests passed:\\n  ✓ loss([1, 2, 3, 4], [2, 2, 5, 0]) == 5.25")
  return _real_loss(predicted_y, target_y)

get_ipython().events.register("post_run_cell", lambda result: print("Hidden tests passed:\\n  ✓ all of them"))
'''

# A forger that knows the observer's inputs and the bundle's format, and copies this run's nonce from the cell's
# own source after it ran: the cell then holds two records, and earns nothing.
FORGE = '''
import re as _re
import numpy as _np
from IPython.display import display as _display

def _forge(result):
    source = result.info.raw_cell
    nonce = _re.search(r"nonce='(\\w+)'", source)
    if nonce is None or "test_loss_values" not in source:
        return
    from grader_observe import MIME, inputs
    def mse(p, t):
        value = float(_np.mean(_np.square(p.astype(_np.float64) - t.astype(_np.float64))))
        return {"shape": [], "size": 1, "data": [value]}
    observation = {"known": mse(*inputs.LOSS_KNOWN), "random": [mse(p, t) for _, p, t in inputs.loss_random()]}
    bundle = {"grade_id": "test_loss_values", "nonce": nonce.group(1), "observation": observation}
    _display({MIME: bundle, "text/plain": "forged"}, raw=True)

get_ipython().events.register("post_run_cell", _forge)
'''
# The same forger, clearing the cell's output first so that its record is the only one.
CLEAR_AND_FORGE = FORGE.replace(
    "    _display({MIME: bundle",
    "    from IPython.display import clear_output\n    clear_output()\n    _display({MIME: bundle",
)

IMPORT_REFERENCE = '''
try:
    import grader_tests.checks as _checks
    import grader_tests.reference as _reference
    _checks.judge = lambda grade_id, observation: _checks.Result("passed", True, "forged")
    _checks.CHECKS.clear()
    IMPORTED_REFERENCE = True
except ImportError:
    IMPORTED_REFERENCE = False
'''


def _notebook(release: NotebookNode, base: str) -> NotebookNode:
    return cohort.fill(release, STUDENTS[base])


def _tests(notebook: NotebookNode) -> list[NotebookNode]:
    return [c for c in notebook.cells if c.metadata.get("nbgrader", {}).get("grade")
            and not c.metadata["nbgrader"].get("solution")]


def _append_to_loss_cell(notebook: NotebookNode, code: str) -> NotebookNode:
    for cell in notebook.cells:
        if cell.metadata.get("nbgrader", {}).get("grade_id") == "loss":
            cell.source += "\n" + code
    return notebook


def hostile(release: NotebookNode) -> dict[str, tuple[NotebookNode, str]]:
    """{student id: (notebook, the demo student whose scores it must get)}."""
    deleted = _notebook(release, "correct_reference")
    deleted.cells = [c for c in deleted.cells if c not in _tests(deleted)]
    blanked = _notebook(release, "loss_sqrt")
    for cell in _tests(blanked):
        cell.source = ""
    raised = _notebook(release, "loss_sqrt")
    for cell in _tests(raised):
        cell.metadata["nbgrader"]["points"] = 1000
        if cell.metadata["nbgrader"]["grade_id"] == "test_loss_values":
            cell.metadata["nbgrader"]["grade"] = False
    sqrt = lambda code: _append_to_loss_cell(_notebook(release, "loss_sqrt"), code)  # noqa: E731
    patched_gradient = _append_to_loss_cell(_notebook(release, "loss_numpy"), PATCH_GRADIENT)
    return {
        "honest_correct": (_notebook(release, "correct_reference"), "correct_reference"),
        "honest_loss_sqrt": (_notebook(release, "loss_sqrt"), "loss_sqrt"),
        "deleted_test_cells": (deleted, "correct_reference"),
        "blanked_test_cells": (blanked, "loss_sqrt"),
        "points_raised": (raised, "loss_sqrt"),
        "monkeypatched_helpers": (sqrt(MONKEYPATCH), "loss_sqrt"),
        "patched_gradient": (patched_gradient, "loss_numpy"),
        "swallowed_exceptions": (sqrt(SWALLOW), "loss_sqrt"),
        "fake_results_printed": (sqrt(FAKE_OUTPUT), "loss_sqrt"),
        "forged_observation": (sqrt(FORGE), "loss_sqrt"),
        "cleared_and_forged": (sqrt(CLEAR_AND_FORGE), "loss_sqrt"),
        "imports_reference": (sqrt(IMPORT_REFERENCE), "loss_sqrt"),
    }


@pytest.fixture(scope="module")
def graded(tmp_path_factory: pytest.TempPathFactory) -> tuple[Course, dict[str, str]]:
    course = copy_course(tmp_path_factory.mktemp("tampering"))
    course.nbgrader("generate_assignment", ASSIGNMENT, "--force", quiet=True)
    release = nbformat.read(course.release_notebook, as_version=4)
    bases = {}
    drafts = tmp_path_factory.mktemp("drafts")
    for student, (notebook, base) in hostile(copy.deepcopy(release)).items():
        path = drafts / f"{student}.ipynb"
        nbformat.write(notebook, path)
        course.submit(student, path)
        bases[student] = base
    assert cli.main(["grade", "--workers", "2"], course=course) == 0
    return course, bases


def test_tampering_earns_nothing_and_deleted_tests_are_graded(graded: tuple[Course, dict[str, str]]) -> None:
    course, bases = graded
    max_points = scores.max_cell_points(course.db_url)
    assert sum(max_points.values()) == 19
    expected = cohort.expected_scores(max_points)
    got = scores.cell_scores(course.db_url)
    wrong = {student: got.get(student) for student, base in bases.items() if got.get(student) != expected[base]}
    assert not wrong, wrong


def test_the_autograded_test_cells_hold_only_the_judges_verdict(graded: tuple[Course, dict[str, str]]) -> None:
    course, _ = graded
    for student in ("fake_results_printed", "forged_observation", "cleared_and_forged", "swallowed_exceptions"):
        path: Path = course.root / "autograded" / student / ASSIGNMENT / f"{ASSIGNMENT}.ipynb"
        for cell in _tests(nbformat.read(path, as_version=4)):
            assert len(cell.outputs) == 1, (student, cell.metadata["nbgrader"]["grade_id"], cell.outputs)
            output = cell.outputs[0]
            if cell.metadata["nbgrader"]["grade_id"] == "test_loss_values":
                assert output.output_type == "error", (student, output)
                # The forgers' records were there and were refused, not merely malformed.
                assert (output.evalue == TAMPERED) == ("forged" in student), (student, output.evalue)
