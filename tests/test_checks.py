"""Fast unit tests of observing then judging, on namespaces built here (no notebook, no kernel)."""

from __future__ import annotations

import os
from typing import Any

import numpy as np
import pytest
import tensorflow as tf

from coursekit.course import cohort
from grader_observe.isolation import quiet, rebind
from grader_observe.kernel import RUN, collect, collect_apart, load_stand_ins
from grader_tests import checks, in_process, stand_ins, stand_ins_source
from grader_tests import reference as ref


def namespace(**overrides: Any) -> dict[str, Any]:
    """A notebook's globals with the reference parts, then the given replacements."""
    ns: dict[str, Any] = {"tf": tf, "np": np}
    # The student's three cells (the demo cohort's correct ones), run in a notebook-like namespace.
    exec("\n\n".join((cohort.MODEL, cohort.LOSS, cohort.TRAIN)), ns)
    for name, source in overrides.items():
        exec(source, ns)
        assert name in ns
    return ns


PART_IDS = [grade_id for checks_of_part in checks.PART_CHECKS.values() for grade_id, _ in checks_of_part]


@pytest.mark.parametrize("grade_id", PART_IDS)
def test_reference_parts_pass(grade_id: str) -> None:
    result = in_process.run(grade_id, namespace())
    assert result.passed, result.message


@pytest.mark.parametrize(
    ("loss_source", "hint"),
    [
        ("def loss(p, t): return tf.reduce_sum(tf.square(p - t))", "did you sum the squared errors"),
        ("def loss(p, t): return tf.reduce_mean(tf.abs(p - t))", "absolute error"),
        ("def loss(p, t): return tf.sqrt(tf.reduce_mean(tf.square(p - t)))", "square root"),
        ("def loss(p, t): return tf.reduce_mean(p - t)", "forget to square"),
        ("def loss(p, t): return tf.square(p - t)", "a single number"),
    ],
)
def test_loss_mistakes_are_named(loss_source: str, hint: str) -> None:
    result = in_process.run("test_loss_values", namespace(loss=loss_source))
    assert not result.passed
    assert hint in result.message
    assert "expected" in result.message


def test_loss_that_blocks_gradients_fails_properties_only() -> None:
    ns = namespace(loss="def loss(p, t): return np.mean(np.square(np.asarray(p) - np.asarray(t)))")
    assert in_process.run("test_loss_values", ns).passed
    result = in_process.run("test_loss_properties", ns)
    assert not result.passed and "no gradient flows" in result.message


def test_wrong_loss_costs_no_train_points() -> None:
    ns = namespace(loss="def loss(p, t): return tf.reduce_sum(tf.abs(p - t))")
    assert not in_process.run("test_loss_values", ns).passed
    assert in_process.run("test_train_step", ns).passed
    assert in_process.run("test_train_state", ns).passed


def test_wrong_model_costs_no_train_or_loss_points() -> None:
    ns = namespace(Model="class Model:\n  def __init__(self):\n    self.w = 1.0\n    self.b = 4.0\n"
                   "  def __call__(self, x):\n    return self.w * x")
    assert not in_process.run("test_model_variables", ns).passed
    for grade_id in ("test_loss_values", "test_loss_properties", "test_train_step", "test_train_state"):
        assert in_process.run(grade_id, ns).passed, grade_id


def _train_apart(ns: dict[str, Any]) -> dict[str, Any]:
    """What the train probe child observes: the notebook's train on the stand-in Model and loss."""
    model_and_loss = load_stand_ins(stand_ins_source(["Model", "loss"]))
    return {grade_id: collect_apart(grade_id, ns, model_and_loss) for grade_id in checks.APART}


def test_convergence_substitutes_a_wrong_part() -> None:
    ns = namespace(loss="def loss(p, t): return tf.reduce_sum(tf.square(p - t))")
    kernel = collect("test_convergence_fit", ns)
    statuses = checks.part_statuses(kernel["parts"], _train_apart(ns))
    assert statuses == {"Model": "ok", "loss": "wrong", "train": "ok"}
    assert checks.mix_for(statuses) == "student/stand-in/student"
    # The run is observed where only the loss's stand-in lives.
    apart = collect_apart(RUN, ns, load_stand_ins(stand_ins_source(["loss"])), "student/stand-in/student")
    observation = checks.compose("test_convergence_fit", kernel, apart, _train_apart(ns))
    history = checks.rerun_training(observation, statuses)
    assert history.substituted == ("loss",)
    assert abs(history.w[-1] - ref.SEED_LAB_TABLE[-1][0]) < ref.TABLE_WB_TOLERANCE
    assert checks.judge("test_convergence_fit", observation).passed


def test_convergence_needs_every_part_attempted() -> None:
    ns = namespace(train="def train(model, inputs, outputs, learning_rate):\n  raise NotImplementedError()")
    result = in_process.run("test_convergence_fit", ns)
    assert not result.passed and "train is not implemented" in result.message


@pytest.mark.parametrize(
    ("train_source", "hint"),
    [
        ("def train(model, x, y, lr):\n  with tf.GradientTape() as t:\n    l = loss(model(x), y)\n"
         "  dw, db = t.gradient(l, [model.w, model.b])\n  model.w.assign_add(lr * dw)\n"
         "  model.b.assign_add(lr * db)\n  return l", "subtracts learning_rate * gradient"),
        ("def train(model, x, y, lr):\n  with tf.GradientTape() as t:\n    l = loss(model(x), y)\n"
         "  db, dw = t.gradient(l, [model.w, model.b])\n  model.w.assign_sub(lr * dw)\n"
         "  model.b.assign_sub(lr * db)\n  return l", "swapped"),
        ("def train(model, x, y, lr):\n  with tf.GradientTape() as t:\n    l = loss(model(x), y)\n"
         "  dw, db = t.gradient(l, [model.w, model.b])\n  model.w.assign_sub(lr * dw)\n"
         "  model.b.assign_sub(lr * db)\n  return loss(model(x), y)", "loss after the update"),
    ],
)
def test_train_mistakes_are_named(train_source: str, hint: str) -> None:
    result = in_process.run("test_train_step", namespace(train=train_source))
    assert not result.passed
    assert hint in result.message


def test_train_with_momentum_state_fails_one_step_per_call() -> None:
    ns = namespace(train="""
_velocity = {}
def train(model, x, y, lr):
  with tf.GradientTape() as t:
    l = loss(model(x), y)
  for var, g in zip([model.w, model.b], t.gradient(l, [model.w, model.b])):
    v = 0.9 * _velocity.get(id(var), 0.0) + g
    _velocity[id(var)] = v
    var.assign_sub(lr * v)
  return l
""")
    result = in_process.run("test_train_state", ns)
    assert not result.passed and "exactly one step" in result.message


def test_rebind_reaches_helpers_and_unwraps_tf_function() -> None:
    ns = namespace(train="""
def helper(model, x, y):
  return loss(model(x), y)

@tf.function
def train(model, x, y, lr):
  with tf.GradientTape() as t:
    l = helper(model, x, y)
  dw, db = t.gradient(l, [model.w, model.b])
  model.w.assign_sub(lr * dw)
  model.b.assign_sub(lr * db)
  return l
""")
    seen = []

    def spy_loss(p: Any, t: Any) -> Any:
        seen.append(True)
        return stand_ins.loss(p, t)

    isolated = rebind(ns["train"], loss=spy_loss)
    isolated(stand_ins.Model(), tf.constant([1.0]), tf.constant([5.0]), 0.1)
    assert seen, "the student's helper still called the notebook's loss"
    assert ns["loss"] is not spy_loss


def test_quiet_swallows_python_and_fd_output(capfd: pytest.CaptureFixture[str]) -> None:
    with quiet():
        print("python stdout")
        os.write(2, b"fd stderr\n")
    out, err = capfd.readouterr()
    assert "python stdout" not in out and "fd stderr" not in err
    print("after")
    assert "after" in capfd.readouterr().out


def test_unknown_grade_id_is_a_clear_error() -> None:
    with pytest.raises(KeyError, match="no checks for grade id"):
        in_process.run("test_nothing", namespace())


def test_stored_lab_data_is_tensorflows_draw() -> None:
    tf.keras.utils.set_random_seed(ref.SEED)
    xs = tf.random.normal(shape=[ref.NUM_EXAMPLES])
    stored_xs, stored_ys = ref.training_data()
    assert np.array_equal(stored_xs, xs.numpy())
    assert np.array_equal(stored_ys, (ref.TRUE_W * xs + ref.TRUE_B).numpy())


def test_a_forged_or_broken_observation_earns_nothing() -> None:
    good = collect("test_loss_values", namespace())
    assert checks.judge("test_loss_values", good).passed
    for broken in ({}, {"known": "5.25"}, {"known": {"shape": [], "size": 1, "data": []}}, {"random": 1}):
        assert not checks.judge("test_loss_values", broken).passed, broken


def test_student_exceptions_are_observed_not_raised() -> None:
    ns = namespace(Model="class Model:\n  def __init__(self):\n    raise SystemExit(3)")
    observation = collect("test_model_variables", ns)
    assert "SystemExit" in observation["raised"]["message"]
    assert not checks.judge("test_model_variables", observation).passed


def test_train_status_comes_from_the_train_child_and_a_failed_child_decides_nothing() -> None:
    ns = namespace(train="def train(model, inputs, outputs, learning_rate):\n  raise NotImplementedError()")
    kernel_parts = collect("test_convergence_fit", ns)["parts"]
    assert checks.part_statuses(kernel_parts, _train_apart(ns))["train"] == "missing"
    # A child that ended or timed out, or no child, proves nothing: no run, no plot (a stubbed train does not pass
    # for an attempted one by killing its child).
    for broken in ({"observer_error": "ended"}, {"interrupted": True}, None):
        train = None if broken is None else {grade_id: broken for grade_id in checks.APART}
        statuses = checks.part_statuses(kernel_parts, train)
        assert statuses["train"] == "unjudged" and checks.mix_for(statuses) is None
        plot = checks.judge("test_plot_history", checks.compose("test_plot_history", {"parts": kernel_parts}, None,
                                                                 train))
        assert not plot.passed and "train have no result" in plot.message


def test_the_kernel_cannot_supply_what_the_grader_composes() -> None:
    ns = namespace()
    forged = {"statuses": {"Model": "ok", "loss": "ok", "train": "ok"}, "parts": collect("test_plot_history",
                                                                                        ns)["parts"],
              "runs": {"student/student/student": {}}, "recorded": {}}
    composed = checks.compose("test_convergence_fit", forged, None, None)
    assert composed["statuses"]["train"] == "unjudged" and "runs" not in composed
    # Train is judged on the probe child's observation alone.
    assert checks.compose("test_train_step", {"steps": []}, None).keys() == {"observer_error"}
