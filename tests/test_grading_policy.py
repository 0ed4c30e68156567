"""Fast tests of the grading policy for convergence and plots (judge level: no kernel, no nbgrader).

docs/grading.md, "Grading policy": under "each_mistake_once" a wrong part is replaced by the reference in the
convergence run and the figures showing it are waived; under "whole_notebook" the student's own run and figures
are judged; under both, a notebook none of whose parts passes its own checks earns no integration point.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import nbformat
import pytest
from traitlets.config import Config

from coursekit import ASSIGNMENT
from coursekit.course import cohort, late, staleness
from coursekit.course.directory import Course, CourseError
from coursekit.steps.judge import ApartProbes
from coursekit.steps.policy import integration_policy
from grader_tests import checks, in_process

from .conftest import REPO
from .test_checks import namespace

EACH, WHOLE = checks.EACH_MISTAKE_ONCE, checks.WHOLE_NOTEBOOK
INTEGRATION = cohort.INTEGRATION
STUBS = {"Model": "class Model(object):\n  pass\n\nmodel = Model()",
         "loss": "def loss(predicted_y, target_y):\n  return 0.0",
         "train": "def train(model, inputs, outputs, learning_rate):\n  return 0.0"}
WRONG = {"Model": cohort.MODEL.replace("tf.Variable(1.0)", "tf.Variable(2.0)"),  # loses test_model_variables
         "loss": cohort.LOSS.replace("reduce_mean", "reduce_sum"),  # loses test_loss_values
         "train": cohort.TRAIN.replace("learning_rate * d", "d")}  # loses test_train_step


def _failed(ns: dict[str, Any], policy: str, grade_ids: tuple[str, ...] = checks.GRADE_IDS) -> dict[str, str]:
    results = {grade_id: in_process.run(grade_id, ns, [], policy) for grade_id in grade_ids}
    return {grade_id: result.message for grade_id, result in results.items() if not result.passed}


# ---------------------------------------------------------------- test_train_state


@pytest.mark.parametrize("train", [
    STUBS["train"],
    # computes the loss and its gradients, updates nothing
    "def train(model, inputs, outputs, learning_rate):\n  with tf.GradientTape() as t:\n"
    "    current_loss = loss(model(inputs), outputs)\n  t.gradient(current_loss, [model.w, model.b])\n"
    "  return current_loss",
    # assigns the variables their own values
    "def train(model, inputs, outputs, learning_rate):\n  model.w.assign(model.w)\n  model.b.assign(model.b)\n"
    "  return loss(model(inputs), outputs)",
    # steps a copy of the variables
    "def train(model, inputs, outputs, learning_rate):\n  w = tf.Variable(model.w)\n  w.assign_sub(0.1)\n"
    "  return loss(model(inputs), outputs)",
])
def test_a_train_that_changes_nothing_fails_its_state_check(train: str) -> None:
    result = in_process.run("test_train_state", namespace(train=train))
    assert not result.passed and "left model.w and model.b as they were" in result.message, result.message


def test_a_train_that_moves_only_w_still_passes_its_state_check() -> None:
    only_w = cohort.TRAIN.replace("  model.b.assign_sub(learning_rate * db)\n", "")
    assert in_process.run("test_train_state", namespace(train=only_w)).passed
    assert not in_process.run("test_train_step", namespace(train=only_w)).passed


# ---------------------------------------------------------------- the decisions


@pytest.mark.parametrize(("statuses", "each", "whole"), [
    ({"Model": "ok", "loss": "ok", "train": "ok"}, "student/student/student", "student/student/student"),
    ({"Model": "ok", "loss": "wrong", "train": "ok"}, "student/stand-in/student", "student/student/student"),
    ({"Model": "wrong", "loss": "ok", "train": "wrong"}, "stand-in/student/stand-in", "student/student/student"),
    ({"Model": "wrong", "loss": "wrong", "train": "wrong"}, None, None),  # nothing of the student's own
    ({"Model": "ok", "loss": "missing", "train": "ok"}, None, None),  # a part never attempted: no run
    ({"Model": "ok", "loss": "ok", "train": "unjudged"}, None, None),
])
def test_the_run_each_policy_judges(statuses: dict[str, str], each: str | None, whole: str | None) -> None:
    assert checks.mix_for(statuses, EACH) == each
    assert checks.mix_for(statuses, WHOLE) == whole


def test_a_wrong_part_never_runs_beside_its_own_stand_in() -> None:
    statuses = {"Model": "ok", "loss": "wrong", "train": "ok"}
    assert checks.run_beside_stand_ins(statuses, checks.mix_for(statuses, EACH)) == ()
    assert checks.run_beside_stand_ins(statuses, checks.mix_for(statuses, WHOLE)) == ("loss",)

    class Recording(ApartProbes):  # the child each run is asked of, and the stand-ins it would hold
        def _ask(self, name: str, parts: tuple[str, ...], index: int, probe: str, mix: str = "") -> None:
            self.asked_of = (name, parts)

        def _answer(self, index: int) -> dict[str, Any]:
            return {}

    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("x = 1")])
    for mix, alone, expected in (("student/stand-in/student", False, ("train", ("Model", "loss"))),
                                 ("student/student/student", True, ("own", ())),
                                 ("student/student/stand-in", False, ("run", ("train",)))):
        probes = Recording(notebook, ".", 1.0)
        probes.run(1, mix, alone)
        assert probes.asked_of == expected, mix


def test_the_kernel_cannot_choose_the_policy() -> None:
    forged = {"policy": EACH, "parts": {}, "recorded": {}}
    for grade_id in (*cohort.INTEGRATION,):
        assert checks.compose(grade_id, forged, None, None, WHOLE)["policy"] == WHOLE
    assert checks.compose("test_convergence_fit", {}, None, None)["policy"] == checks.DEFAULT_POLICY


# ---------------------------------------------------------------- notebooks' parts under each policy


@pytest.mark.parametrize("policy", list(checks.POLICIES))
@pytest.mark.parametrize("parts", [STUBS, WRONG], ids=["do-nothing stubs", "three wrong parts"])
def test_no_part_of_your_own_earns_no_integration_point(policy: str, parts: dict[str, str]) -> None:
    failed = _failed(namespace(**parts), policy)
    assert set(INTEGRATION) <= set(failed)
    for grade_id in INTEGRATION:
        assert failed[grade_id] == checks.NOTHING_OF_YOUR_OWN, grade_id
    if parts is STUBS:
        assert set(failed) == set(checks.GRADE_IDS)  # 0/19
    else:
        assert set(failed) == {"test_model_variables", "test_loss_values", "test_train_step", *INTEGRATION}


def test_one_wrong_part_costs_once_or_the_whole_run() -> None:
    ns = namespace(loss=WRONG["loss"])
    each = in_process.run("test_convergence_fit", ns, [], EACH)
    assert each.passed and 'run with the reference loss' in each.message and "each mistake costs once" in each.message
    whole = in_process.run("test_convergence_fit", ns, [], WHOLE)
    assert not whole.passed and 'grading policy "whole notebook"' in whole.message and "your loss" in whole.message


def test_one_part_of_your_own_is_enough_under_each_mistake_once() -> None:
    # The documented edge (docs/grading.md): the reference stands in for the other two parts.
    ns = namespace(loss=STUBS["loss"], train=STUBS["train"])
    assert in_process.run("test_convergence_fit", ns, [], EACH).passed
    assert not in_process.run("test_convergence_fit", ns, [], WHOLE).passed


def test_whole_notebook_figures_must_show_the_lab_run(tmp_path: Path) -> None:
    """A Model of the student's own and a train that does nothing: the figures are drawn faithfully, from a run
    that never moves. Waived under "each mistake costs once", 0 under "whole notebook"."""
    release = nbformat.read(Course(REPO).release_notebook, as_version=4)
    student = cohort.Student("model_only", "a correct Model; train does nothing", train=STUBS["train"])
    path = tmp_path / ASSIGNMENT / f"{ASSIGNMENT}.ipynb"
    path.parent.mkdir()
    nbformat.write(cohort.fill(release, student), path)
    run = in_process.execute(path)
    for grade_id in ("test_plot_data", "test_plot_history", "test_plot_loss_weights"):
        each = in_process.run(grade_id, run.namespace, run.figures, EACH)
        assert each.passed, each.message
    assert in_process.run("test_plot_data", run.namespace, run.figures, WHOLE).passed  # the untrained Model: right
    for grade_id in ("test_plot_history", "test_plot_loss_weights"):
        whole = in_process.run(grade_id, run.namespace, run.figures, WHOLE)
        assert not whole.passed and "earns points only when it shows the lab's run" in whole.message, whole.message


# ---------------------------------------------------------------- the setting


def test_the_policy_is_set_in_nbgrader_config_and_is_part_of_what_graded() -> None:
    config = late.course_config(Course(REPO))
    assert config.GradingPolicy.integration == checks.DEFAULT_POLICY == integration_policy(Config())
    whole = Config()
    whole.GradingPolicy.integration = WHOLE
    assert integration_policy(whole) == WHOLE
    assert staleness.grading_rule(whole) != staleness.grading_rule(Config())
    wrong = Config()
    wrong.GradingPolicy.integration = "whole notebook"
    with pytest.raises(CourseError, match=r"c\.GradingPolicy\.integration = 'whole notebook'.*'whole_notebook'"):
        integration_policy(wrong)
