"""The judge: from a grade cell's observation (plain data recorded in the student's kernel) to a result.

Runs in the grader process, never in the student's kernel: student code cannot reach the comparisons, the
reference numbers or the helpers they use. The observer (grader_observe) records what the student's objects
returned on the inputs in grader_observe.inputs; this module decides. Every check grades one part in
isolation (docs/grading.md):
- model checks use only `Model`;
- loss checks use only `loss`;
- train checks judge the student's `train` run on a stand-in model with the stand-in loss;
- convergence and plots (the integration cells) follow the instructor's grading policy (`POLICIES`, set in
  nbgrader_config.py and composed in by the grader): under "each mistake costs once" convergence judges the
  run of the notebook's schedule with the stand-in for any part that fails its own checks, and a figure that
  shows a wrong part's output is waived (its points are already lost); under "whole notebook" both judge the
  student's own run and figures. Under both, a notebook none of whose parts passes its own checks earns no
  integration point, and a part never attempted leaves nothing to run. The grader picks the run from the
  parts' statuses (`part_statuses`, `mix_for`: never observed next to the part's own stand-in) and a probe
  child runs it (`compose` puts the pieces together);
- plot checks read the figures' artist data.
An observation that is malformed, incomplete or missing earns nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from grader_observe import inputs

from . import reference as ref


@dataclass(frozen=True)
class Result:
    check: str
    passed: bool
    message: str
    # A failure's stable id (a key of HINTS): what the class report counts, never the message's wording.
    hint: str = ""


class CheckFailure(Exception):
    """An expectation was not met; the message says what, what came back, and the likely cause.

    `hint`: the failure's stable id, a key of HINTS. Give one at every raise (tests/test_report.py checks it);
    a failure without one is counted as "<part>.other", never lost.
    """

    def __init__(self, message: str, *, hint: str = "") -> None:
        super().__init__(message)
        self.hint = hint


class Refused(CheckFailure):
    """The cell is not judged at all (a part missing or unjudged, nothing of the student's own): no figure or run
    was looked at."""


class StudentError(Exception):
    """Student code raised, or is not defined: the observer recorded the message."""

    def __init__(self, message: str, *, not_implemented: bool = False, hint: str = "") -> None:
        super().__init__(message)
        self.not_implemented = not_implemented
        self.hint = hint


Observation = Mapping[str, Any]

_KINDS = {"Model": "model class", "loss": "loss function", "train": "training step"}


def _get(obs: Observation, key: str) -> Any:
    """What the observer recorded at `key`, or why it recorded nothing there (the probe stopped before)."""
    if key in obs:
        return obs[key]
    if "undefined" in obs:
        name = str(obs["undefined"])
        raise StudentError(
            f"`{name}` is not defined: run the cell that defines your {_KINDS.get(name, name)}, and keep its name.",
            not_implemented=True, hint="notebook.name_undefined",
        )
    if "raised" in obs:
        raised = obs["raised"]
        raise StudentError(str(raised["message"]), not_implemented=bool(raised["not_implemented"]))
    if obs.get("no_stand_ins"):
        raise CheckFailure("the grader did not inject the stand-in parts: grade this notebook with `coursekit grade`.",
                           hint="grader.no_stand_ins")
    if obs.get("interrupted"):
        raise CheckFailure("the hidden tests ran out of time in this cell: your code took too long.",
                           hint="cell.hidden_tests_timeout")
    if "observer_error" in obs:
        raise CheckFailure(f"the hidden tests could not observe your code: {obs['observer_error']}",
                           hint="grader.observer_error")
    raise CheckFailure("the hidden tests recorded no result for this check: run the notebook from the top.",
                       hint="notebook.no_record")


def _array(record: Any) -> np.ndarray:
    data = np.array([float(v) for v in record["data"]], dtype=np.float64)
    size = int(record["size"])
    if data.size < size:  # the observer keeps the first values of a huge array; the rest are unknown
        data = np.concatenate([data, np.full(size - data.size, np.nan)])
    return data.reshape([int(n) for n in record["shape"]])


def _numeric(description: str, record: Any) -> np.ndarray:
    if record is None or "error" in record:
        kind = record["type"] if record else "nothing"
        error = record["error"] if record else "no value"
        raise CheckFailure(f"{description} returned {kind}, which is not a number or tensor: {error}",
                           hint="result.not_a_number")
    return _array(record)


def _pair(values: Any) -> tuple[float, float] | None:
    return None if values is None else (float(values[0]), float(values[1]))


def _fmt(value: Any) -> str:
    array = np.asarray(value)
    if array.size > 6:
        return f"an array of shape {array.shape} starting {np.array2string(array.ravel()[:4], precision=4)}"
    return np.array2string(array, precision=5) if array.ndim else f"{float(array):.6g}"





# ---------------------------------------------------------------- model


def _expect_attributes(missing: list[str]) -> None:
    if missing:
        raise CheckFailure(
            f"Model() has no attribute {' or '.join(missing)}: store the weight as `self.w` "
            "and the bias as `self.b`.", hint="model.missing_attribute",
        )


def check_model_variables(obs: Observation) -> Iterator[str]:
    _expect_attributes(_get(obs, "missing"))
    variables = _get(obs, "variables")
    for name in ("w", "b"):
        var = variables[name]
        if not var["is_variable"]:
            raise CheckFailure(
                f"model.{name} is a {var['type']}, expected a tf.Variable: gradient "
                f"descent can only update a variable. Write `self.{name} = tf.Variable(...)`.",
                hint="model.not_a_variable",
            )
        if var["dtype"] != "float32":
            raise CheckFailure(
                f"model.{name} has dtype {var['dtype']}, expected float32: "
                f"write the initial value as a float (`4.0`, not `4`).", hint="model.not_float32",
            )
        if not var["trainable"]:
            raise CheckFailure(f"model.{name} is not trainable: leave `trainable` at its default, True.",
                               hint="model.not_trainable")
    yield "w and b are trainable float32 tf.Variables"
    got = tuple(float(_numeric(f"model.{name}", variables[name]["value"])) for name in ("w", "b"))
    if got != (ref.INITIAL_W, ref.INITIAL_B):
        hint, hint_id = "", "model.wrong_initial_values"
        if got == (ref.INITIAL_B, ref.INITIAL_W):
            hint, hint_id = " It looks like w and b are swapped.", "model.initial_values_swapped"
        elif got == (2.0, 1.0):
            hint = " Those are the values of an old comment: the lab starts from w=1.0 and b=4.0."
            hint_id = "model.old_comment_values"
        raise CheckFailure(
            f"a new Model() starts at w={got[0]:g}, b={got[1]:g}; expected w=1.0, b=4.0.{hint}", hint=hint_id
        )
    yield "a new Model() starts at w=1.0 and b=4.0"
    _expect_attributes(_get(obs, "second_missing"))
    if _get(obs, "shares_variables"):
        raise CheckFailure(
            "two Model() objects share the same variables: create them in __init__ "
            "(`self.w = tf.Variable(1.0)`), not as class attributes.", hint="model.shared_class_variables",
        )
    yield "each Model() has its own variables"


def check_model_output(obs: Observation) -> Iterator[str]:
    # The observer set w and b itself, so a wrong initial value costs model-variable points only.
    _expect_attributes(_get(obs, "missing"))
    for name in ("w", "b"):
        if not _get(obs, "is_variable")[name]:
            raise CheckFailure(
                f"model.{name} is a {obs['types'][name]}, not a tf.Variable, so its value cannot be set "
                "to test the output: make w and b tf.Variables.", hint="model.not_a_variable",
            )
    got = _numeric("model(2.0)", _get(obs, "scalar"))
    if got.shape != () or not np.isclose(got, 2.5, rtol=1e-6):
        hint, hint_id = _model_hint(got, 2.0, 1.5, -0.5)
        raise CheckFailure(
            f"with w=1.5 and b=-0.5, model(2.0) returned {_fmt(got)}; expected w*x + b = 2.5." + hint, hint=hint_id
        )
    yield "model(2.0) == w*2 + b for a scalar"
    x = inputs.MODEL_X
    got = _numeric("model(x) for a vector x", _get(obs, "vector"))
    expected = 1.5 * x - 0.5
    if got.shape != x.shape:
        raise CheckFailure(
            f"model(x) for x of shape {x.shape} returned shape {got.shape}; expected one output "
            "per input, the same shape as x: use elementwise `*` and `+`, not a matrix product "
            "or a reduction.", hint="model.output_shape",
        )
    if not np.allclose(got, expected, rtol=1e-6, atol=1e-6):
        hint, hint_id = _model_hint(got, x, 1.5, -0.5)
        raise CheckFailure(
            f"with w=1.5 and b=-0.5, model(x) for x={_fmt(x)} returned {_fmt(got)}; expected "
            f"w*x + b = {_fmt(expected)}." + hint, hint=hint_id,
        )
    yield "model(x) == w*x + b elementwise for a vector"
    got = _numeric("model(x) after changing w and b", _get(obs, "after_reset"))
    if got.shape != x.shape or not np.allclose(got, 3.0 * x - 2.0, rtol=1e-6, atol=1e-6):
        raise CheckFailure(
            "after setting w=3 and b=-2, model(x) returned "
            f"{_fmt(got)} instead of {_fmt(3.0 * x - 2.0)}: __call__ must read self.w and self.b "
            "each time, not values copied in __init__.", hint="model.values_copied_in_init",
        )
    yield "the output follows the current values of w and b"
    if not _get(obs, "gradient_flows"):
        raise CheckFailure(
            "no gradient flows from model(x) back to w and b: compute the output with "
            "TensorFlow operations on the variables, without .numpy() or NumPy functions.", hint="model.no_gradient",
        )
    yield "gradients flow from the output to w and b"


def _model_hint(got: np.ndarray, x: Any, w: float, b: float) -> tuple[str, str]:
    """The likely cause of a wrong output, and its hint id."""
    x = np.asarray(x, dtype=np.float64)
    if got.shape != np.shape(x):
        return "", "model.wrong_output"
    candidates = (
        (" It looks like w and b are swapped in __call__ (b*x + w).", "model.call_swapped", b * x + w),
        (" It looks like the bias is missing (w*x).", "model.bias_missing", w * x),
        (" It looks like the weight is missing (x + b).", "model.weight_missing", x + b),
        (" It looks like you multiplied by the bias (w*x*b).", "model.multiplied_by_bias", w * x * b),
    )
    for hint, hint_id, value in candidates:
        if np.allclose(got, value, rtol=1e-6, atol=1e-6):
            return hint, hint_id
    return "", "model.wrong_output"





# ---------------------------------------------------------------- loss

_LOSS_MISTAKES: tuple[tuple[str, str, Callable[[np.ndarray], float]], ...] = (
    ("did you sum the squared errors instead of averaging them? Use tf.reduce_mean.", "loss.sum_instead_of_mean",
     lambda d: float(np.sum(d**2))),
    ("did you take the absolute error instead of squaring it? Use tf.square.", "loss.absolute_error",
     lambda d: float(np.mean(np.abs(d)))),
    ("did you take the square root (RMSE)? The loss is the mean of the squared errors, no root.",
     "loss.root_mean_squared", lambda d: float(np.sqrt(np.mean(d**2)))),
    ("did you forget to square the errors? Use tf.square(predicted_y - target_y).", "loss.not_squared",
     lambda d: float(np.mean(d))),
    ("did you forget to square the errors? Use tf.square(predicted_y - target_y).", "loss.not_squared",
     lambda d: float(np.mean(-d))),
    ("did you halve the loss? The lab's MSE has no 1/2 factor.", "loss.halved",
     lambda d: float(0.5 * np.mean(d**2))),
    ("did you sum the absolute errors? Use the mean of the squared errors.", "loss.sum_of_absolute_errors",
     lambda d: float(np.sum(np.abs(d)))),
)




def _expect_loss(got: np.ndarray, predicted: np.ndarray, target: np.ndarray, where: str) -> None:
    difference = predicted.astype(np.float64) - target.astype(np.float64)
    expected = float(np.mean(difference**2))
    if got.shape != ():
        raise CheckFailure(
            f"loss on {where} returned shape {got.shape}; expected a single number (shape ()): "
            "average over the examples with tf.reduce_mean.", hint="loss.not_a_scalar",
        )
    if np.isclose(got, expected, rtol=1e-5, atol=1e-7):
        return
    message = f"loss on {where} returned {float(got):.6g}; expected {expected:.6g} (the mean squared error)."
    for hint, hint_id, mistake in _LOSS_MISTAKES:
        if np.isclose(got, mistake(difference), rtol=1e-5, atol=1e-7):
            if hint_id == "loss.sum_instead_of_mean":
                message += f" That is {float(got) / expected:.0f}x the expected value:"
            raise CheckFailure(f"{message} {hint}", hint=hint_id)
    raise CheckFailure(message, hint="loss.wrong_value")






def check_loss_values(obs: Observation) -> Iterator[str]:
    predicted, target = inputs.LOSS_KNOWN
    got = _numeric("loss(predicted_y, target_y)", _get(obs, "known"))
    _expect_loss(got, predicted, target, "known values")
    yield "loss([1, 2, 3, 4], [2, 2, 5, 0]) == 5.25"
    cases = inputs.loss_random()
    recorded = obs.get("random", [])
    for index, (size, predicted, target) in enumerate(cases):
        record = recorded[index] if index < len(recorded) else _get(obs, f"random{size}")
        got = _numeric("loss(predicted_y, target_y)", record)
        _expect_loss(got, predicted, target, f"{size} random values")
    yield "the loss matches the mean squared error on random inputs"


def check_loss_properties(obs: Observation) -> Iterator[str]:
    shape = tuple(_get(obs, "shape"))
    if shape != ():
        raise CheckFailure(
            f"loss returned shape {shape}; expected a scalar: one number for the whole "
            "batch, averaged with tf.reduce_mean.", hint="loss.not_a_scalar",
        )
    yield "the loss is a scalar"
    if not _get(obs, "gradient_flows"):
        raise CheckFailure(
            "no gradient flows through your loss: compute it with TensorFlow operations "
            "(tf.square, tf.reduce_mean), without .numpy() or NumPy functions, so that "
            "GradientTape can differentiate it.", hint="loss.no_gradient",
        )
    yield "gradients flow through the loss"


# ---------------------------------------------------------------- train

_TRAIN_X = inputs.TRAIN_X
_TRAIN_Y = inputs.TRAIN_Y

def _step_hint(got_w: float, got_b: float, start: ref.Step, lr: float) -> tuple[str, str]:
    """The likely cause of a wrong step, and its hint id."""
    expected = ref.gd_step(start.w, start.b, _TRAIN_X, _TRAIN_Y, lr)
    dw, db = (start.w - expected.w) / lr, (start.b - expected.b) / lr
    if np.isclose(got_w, start.w) and np.isclose(got_b, start.b):
        return " w and b did not change: update the variables in place with assign_sub (or assign).", "train.no_update"
    if np.isclose(got_w, start.w + lr * dw, rtol=1e-4) and np.isclose(got_b, start.b + lr * db, rtol=1e-4):
        return (" You moved up the gradient: gradient descent subtracts learning_rate * gradient.",
                "train.gradient_ascent")
    if np.isclose(got_w, start.w - lr * db, rtol=1e-4) and np.isclose(got_b, start.b - lr * dw, rtol=1e-4):
        return (" The gradients of w and b are swapped: t.gradient returns them in the order you pass the variables.",
                "train.gradients_swapped")
    if np.isclose(got_w, start.w - dw, rtol=1e-4) and np.isclose(got_b, start.b - db, rtol=1e-4):
        return " The step ignores the learning rate: subtract learning_rate * gradient.", "train.learning_rate_ignored"
    for other_lr in (0.1, 0.01, 0.001):
        step = ref.gd_step(start.w, start.b, _TRAIN_X, _TRAIN_Y, other_lr)
        if other_lr != lr and np.isclose(got_w, step.w, rtol=1e-4) and np.isclose(got_b, step.b, rtol=1e-4):
            return (f" That is a step with learning rate {other_lr}: use the learning_rate argument.",
                    "train.fixed_learning_rate")
    if np.isclose(got_w, start.w - lr * dw, rtol=1e-4) and np.isclose(got_b, start.b):
        return " b was not updated.", "train.bias_not_updated"
    if np.isclose(got_b, start.b - lr * db, rtol=1e-4) and np.isclose(got_w, start.w):
        return " w was not updated.", "train.weight_not_updated"
    return "", "train.wrong_step"




def check_train_step(obs: Observation) -> Iterator[str]:
    steps = _get(obs, "steps")
    for index, lr in enumerate(inputs.TRAIN_RATES):
        step = steps[index] if index < len(steps) else _get(obs, f"step {lr}")
        if float(step["lr"]) != lr:
            raise CheckFailure("the hidden tests recorded the steps out of order: run the notebook from the top.",
                               hint="notebook.steps_out_of_order")
        expected = ref.gd_step(ref.INITIAL_W, ref.INITIAL_B, _TRAIN_X, _TRAIN_Y, lr)
        after = _pair(step["after"])
        if after is None:
            raise CheckFailure("after train, model.w or model.b no longer holds a single number.",
                               hint="train.variables_unreadable")
        got_w, got_b = after
        if not np.allclose((got_w, got_b), (expected.w, expected.b), rtol=1e-5, atol=1e-6):
            start = ref.Step(ref.INITIAL_W, ref.INITIAL_B, expected.loss)
            hint, hint_id = _step_hint(got_w, got_b, start, lr)
            raise CheckFailure(
                f"one step from w=1, b=4 with learning_rate={lr} gave w={got_w:.6g}, b={got_b:.6g}; "
                f"expected w={expected.w:.6g}, b={expected.b:.6g}.{hint}", hint=hint_id,
            )
        value = _numeric("train(...)", step["returned"])
        if value.shape != ():
            raise CheckFailure(f"train returned shape {value.shape}; expected the scalar loss.",
                               hint="train.return_not_scalar")
        if not np.isclose(value, expected.loss, rtol=1e-5):
            after_loss = ref.gd_step(expected.w, expected.b, _TRAIN_X, _TRAIN_Y, lr).loss
            after = np.isclose(value, after_loss, rtol=1e-4)
            hint = " That is the loss after the update: return the loss computed inside the tape, before it." \
                if after else ""
            raise CheckFailure(
                f"train returned {float(value):.6g}; expected the loss before the update, "
                f"{expected.loss:.6g}.{hint}",
                hint="train.returns_loss_after_update" if after else "train.wrong_return",
            )
    yield "one step from a known state gives the expected w and b at learning rates 0.1, 0.05 and 0.3"
    yield "train returns the loss before the update"


def check_train_state(obs: Observation) -> Iterator[str]:
    if not _get(obs, "same_objects"):
        raise CheckFailure(
            "train replaced model.w or model.b with new objects: update the existing variables "
            "in place (model.w.assign_sub(...)) so every reference to them sees the change.",
            hint="train.replaces_variables",
        )
    if not _get(obs, "still_variables"):
        raise CheckFailure("after train, model.w or model.b is no longer a tf.Variable.",
                           hint="train.replaces_variables")
    if _get(obs, "notebook_model_changed"):
        raise CheckFailure(
            "train changed the notebook's global `model` instead of the model passed in: "
            "use the `model` argument.", hint="train.global_model",
        )
    yield "train updates the model passed in, in place, keeping the same tf.Variable objects"
    # Whatever rule train applies, a second call must do what a first call does from that state.
    after_one = _pair(_get(obs, "after_one"))
    if after_one is None:
        raise CheckFailure("after train, model.w or model.b no longer holds a single number.",
                           hint="train.variables_unreadable")
    # Without this a train that does nothing (`return 0.0`) passed: it keeps the same variables and "a second
    # call does what a first does" holds trivially when neither call moves anything.
    if np.allclose(after_one, (ref.INITIAL_W, ref.INITIAL_B), rtol=0.0, atol=0.0):
        raise CheckFailure(
            "train(model, ...) left model.w and model.b as they were (w=1, b=4): a training step must move them "
            "down the gradient, in place (model.w.assign_sub(learning_rate * dw)).", hint="train.no_update",
        )
    twice = _numeric("the second train(...) call", _get(obs, "twice"))
    once = _numeric("train(...) on a fresh model", _get(obs, "once"))
    got, expected = _pair(_get(obs, "got")), _pair(_get(obs, "expected"))
    if got is None or expected is None:
        raise CheckFailure("after train, model.w or model.b no longer holds a single number.",
                           hint="train.variables_unreadable")
    if not np.allclose(got, expected, rtol=1e-5, atol=1e-6) or not np.allclose(twice, once, rtol=1e-5):
        raise CheckFailure(
            f"a second call moved w, b from {after_one[0]:.6g}, {after_one[1]:.6g} to {got[0]:.6g}, "
            f"{got[1]:.6g}, but a first call from that same state moves them to {expected[0]:.6g}, "
            f"{expected[1]:.6g}: each call must take exactly one step, with no state carried between "
            "calls (momentum, a counter, a cached gradient or optimizer built once for other variables).",
            hint="train.state_between_calls",
        )
    yield "each call takes exactly one step, with no state carried between calls"


# ---------------------------------------------------------------- parts and convergence

PART_CHECKS: dict[str, tuple[tuple[str, Callable[[Observation], Iterator[str]]], ...]] = {
    "Model": (("test_model_variables", check_model_variables), ("test_model_output", check_model_output)),
    "loss": (("test_loss_values", check_loss_values), ("test_loss_properties", check_loss_properties)),
    "train": (("test_train_step", check_train_step), ("test_train_state", check_train_state)),
}


STATUSES = ("ok", "wrong", "missing")
PART_IDS = tuple(grade_id for part_checks in PART_CHECKS.values() for grade_id, _ in part_checks)
# An observation with one of these recorded no result for its part: it neither proves nor disproves the part.
_UNJUDGED = ("interrupted", "observer_error", "no_stand_ins", "unknown_grade_id")


# ---- The grading policy for convergence and plots (the integration cells), set by the instructor in
# nbgrader_config.py (`c.GradingPolicy.integration`, coursekit/steps/policy.py) and handed to the judge by the
# grader (`compose`), never taken from the kernel. docs/grading.md, "Grading policy".
EACH_MISTAKE_ONCE = "each_mistake_once"
WHOLE_NOTEBOOK = "whole_notebook"
POLICIES = {EACH_MISTAKE_ONCE: "each mistake costs once", WHOLE_NOTEBOOK: "whole notebook"}
DEFAULT_POLICY = EACH_MISTAKE_ONCE
# Both policies: integration points are earned by the student's own parts at work. A notebook none of whose
# parts passes its own checks has nothing of its own in a run or a figure worth points (the reference would be
# doing all the work under "each mistake costs once"), so every integration cell scores 0.
NOTHING_OF_YOUR_OWN = (
    "no points for convergence and plots: none of your parts (Model, loss, train) passed its own checks, and "
    "these points are earned only by your own parts at work."
)


def policy_of(obs: Observation) -> str:
    """The policy the grader composed into the observation (the default for a bare observation in tests)."""
    policy = obs.get("policy", DEFAULT_POLICY)
    if policy not in POLICIES:
        raise CheckFailure(f"the grading policy {policy!r} is not one of {', '.join(POLICIES)}: see nbgrader_config.py",
                           hint="policy.unknown")
    return policy


def _policy_note(policy: str) -> str:
    return f'grading policy "{POLICIES[policy]}"'


def _earned(statuses: Mapping[str, str]) -> None:
    """Integration points need at least one part of the student's own that passes all its checks."""
    if not any(status == "ok" for status in statuses.values()):
        raise Refused(NOTHING_OF_YOUR_OWN, hint="parts.none_of_your_own")


def part_status(observed: Any, part: str) -> str:
    """'ok', 'wrong' (attempted, fails its own checks), 'missing' (not attempted) or 'unjudged' (no result).

    `observed`: the part's observations by grade id, as its own test cells record them.
    """
    if not isinstance(observed, Mapping):
        return "unjudged"
    for grade_id, check in PART_CHECKS[part]:
        obs = observed.get(grade_id)
        if not isinstance(obs, Mapping) or any(key in obs for key in _UNJUDGED):
            return "unjudged"
        outcome = _run_check(check, obs)
        if not outcome.passed:
            return "missing" if outcome.check == "not implemented" else "wrong"
    return "ok"


def part_statuses(kernel_parts: Any, train: Any) -> dict[str, str]:
    """The parts' statuses for convergence and plots, never from an observation made next to the part's stand-in.

    `kernel_parts`: Model and loss as the student's kernel observed them again in the convergence or plot
    cell (no stand-in there); `train`: train's observations by grade id, made in the train probe child, which
    holds the stand-in Model and loss but never train's.
    """
    kernel_parts = kernel_parts if isinstance(kernel_parts, Mapping) else {}
    statuses = {part: part_status(kernel_parts[part], part) for part in ("Model", "loss") if part in kernel_parts}
    statuses["train"] = part_status(train, "train")
    return statuses


def mix_for(statuses: Mapping[str, str], policy: str = DEFAULT_POLICY) -> str | None:
    """The training run the convergence checks judge.

    "each mistake costs once": each part the student's if 'ok', else its stand-in. "whole notebook": the
    student's three parts, as they are. None when there is no run to judge: a part is missing or unjudged, or
    no part is 'ok' (the checks refuse before they look at any run).
    """
    if any(statuses.get(part) not in ("ok", "wrong") for part in inputs.PARTS):
        return None
    if not any(statuses[part] == "ok" for part in inputs.PARTS):
        return None
    if policy == WHOLE_NOTEBOOK:
        return "/".join("student" for _ in inputs.PARTS)
    return "/".join("student" if statuses[part] == "ok" else "stand-in" for part in inputs.PARTS)


def _substituted(mix: str) -> tuple[str, ...]:
    return tuple(part for part, who in zip(inputs.PARTS, mix.split("/"), strict=True) if who == "stand-in")


def run_beside_stand_ins(statuses: Mapping[str, str], mix: str) -> tuple[str, ...]:
    """The student's parts in run `mix` that failed their own checks: such a part must not run in a process that
    holds its stand-in (the train probe child holds Model's and loss's), or it could use it to earn the run."""
    return tuple(part for part, who in zip(inputs.PARTS, mix.split("/"), strict=True)
                 if who == "student" and statuses.get(part) != "ok")


APART = {"test_train_step", "test_train_state"}  # judged only on what a probe child observed
# Written by the grader, never taken as they are from the kernel's record.
_COMPOSED = ("statuses", "runs", "parts", "policy")
_PROBLEMS = ("interrupted", "observer_error", "unknown_grade_id")


def compose(grade_id: str, kernel: Observation, apart: Observation | None,
            train: Mapping[str, Observation] | None = None, policy: str = DEFAULT_POLICY) -> dict[str, Any]:
    """What the check of `grade_id` judges: the kernel's record, what a probe child observed, the parts' statuses.

    `kernel`: the observation in the cell's own output (this run's nonce); `apart`: the probe child's, for
    train and convergence cells (None when there is none); `train`: the train child's observations of the
    train cells, by grade id (for the statuses, see `part_statuses`); `policy`: the instructor's grading policy.
    """
    if grade_id in APART:
        return dict(apart) if apart is not None else {
            "observer_error": "no run of your code apart from the notebook was recorded"}
    composed = {key: value for key, value in kernel.items() if key not in _COMPOSED}
    if grade_id in inputs.RUN_GRADE_IDS:
        apart = apart or {}
        if "runs" in apart:
            composed["runs"] = apart["runs"]
        composed.update({key: apart[key] for key in _PROBLEMS if key in apart})
    if grade_id in inputs.RUN_GRADE_IDS or grade_id.startswith("test_plot_"):
        composed["statuses"] = part_statuses(kernel.get("parts"), train)
        composed["policy"] = policy
    return composed


def _statuses(obs: Observation, parts: tuple[str, ...] = inputs.PARTS) -> dict[str, str]:
    recorded = _get(obs, "statuses")
    statuses = {part: recorded.get(part) for part in parts}
    missing = [part for part, status in statuses.items() if status == "missing"]
    if missing:
        raise Refused(
            f"{', '.join(missing)} {'is' if len(missing) == 1 else 'are'} not implemented yet: "
            "these checks need them to be attempted.", hint="parts.not_implemented",
        )
    unjudged = [part for part, status in statuses.items() if status not in STATUSES]
    if unjudged:
        raise Refused(
            f"the hidden tests of {', '.join(unjudged)} have no result (see those cells): these checks need it.",
            hint="parts.no_result",
        )
    return statuses


@dataclass(frozen=True)
class History:
    w: list[float]
    b: list[float]
    loss: list[float]
    substituted: tuple[str, ...]


def rerun_training(obs: Observation, statuses: dict[str, str]) -> History:
    """The run of the notebook's schedule the policy judges: with the stand-in for each part that is wrong
    ("each mistake costs once"), or the student's own parts ("whole notebook")."""
    _earned(statuses)
    key = mix_for(statuses, policy_of(obs))
    if key is None:
        raise CheckFailure("the hidden tests recorded no training run: run the notebook from the top.",
                           hint="notebook.no_training_run")
    runs = _get(obs, "runs")
    if key not in runs:
        raise CheckFailure("the hidden tests recorded no training run: run the notebook from the top.",
                           hint="notebook.no_training_run")
    run = runs[key]
    if len(run["loss"]) < ref.EPOCHS:
        if "unreadable" in run:
            raise CheckFailure(f"at epoch {run['unreadable']} model.w or model.b no longer holds a single number.",
                               hint="train.variables_unreadable")
        _get(run, "epochs")  # raises what stopped the run: the student's exception, or nothing recorded
    losses = [float(_numeric("train(...)", value)) for value in run["loss"]]
    substituted = _substituted(key)
    return History([float(v) for v in run["w"]], [float(v) for v in run["b"]], losses, substituted)


def _substitution_note(history: History, obs: Observation) -> str:
    policy = policy_of(obs)
    if history.substituted:
        return (f" (run with the reference {', '.join(history.substituted)}, which failed its own checks: "
                f"{_policy_note(policy)})")
    wrong = [part for part, status in _get(obs, "statuses").items() if status != "ok"]
    if wrong:  # only "whole notebook" runs a part that failed its own checks
        return f" (your own run, with your {', '.join(wrong)}, which failed its own checks: {_policy_note(policy)})"
    return ""


def check_convergence_fit(obs: Observation) -> Iterator[str]:
    history = rerun_training(obs, _statuses(obs))
    note = _substitution_note(history, obs)
    rows = zip(ref.SEED_LAB_TABLE, history.w, history.b, history.loss, strict=True)
    for epoch, ((seed_w, seed_b, seed_loss), w, b, loss_value) in enumerate(rows):
        if abs(w - seed_w) > ref.TABLE_WB_TOLERANCE or abs(b - seed_b) > ref.TABLE_WB_TOLERANCE:
            raise CheckFailure(
                f"at epoch {epoch} the training run{note} had w={w:.2f}, b={b:.2f}; "
                f"the lab's table has w={seed_w:.2f}, b={seed_b:.2f}.", hint="convergence.off_the_table",
            )
        if abs(loss_value - seed_loss) > ref.TABLE_LOSS_RTOL * seed_loss:
            raise CheckFailure(
                f"at epoch {epoch} the training run{note} had loss {loss_value:.5f}; "
                f"the lab's table has {seed_loss:.5f}.", hint="convergence.off_the_table",
            )
    yield f"15 epochs{note} follow the lab's table of w, b and loss"


def check_convergence_history(obs: Observation) -> Iterator[str]:
    statuses = _statuses(obs)
    history = rerun_training(obs, statuses)
    rises = [epoch for epoch in range(1, len(history.loss)) if history.loss[epoch] >= history.loss[epoch - 1]]
    if rises:
        raise CheckFailure(
            f"the loss{_substitution_note(history, obs)} did not fall at epoch {rises[0]}: "
            f"{history.loss[rises[0] - 1]:.5f} -> {history.loss[rises[0]]:.5f}. With learning rate 0.1 every step "
            "should lower it.",
            hint="convergence.loss_rises",
        )
    yield "the loss falls every epoch"
    if history.substituted:
        yield "the notebook's own history is not compared, since a part was replaced"
        return
    recorded = _get(obs, "recorded")
    for name, rerun in (("list_w", history.w), ("list_b", history.b), ("losses", history.loss)):
        values = recorded.get(name)
        if values is None:
            raise CheckFailure(
                f"the notebook has no usable `{name}`: run the training loop cell before this one.",
                hint="notebook.history_missing",
            )
        array = np.asarray([float(v) for v in values])
        if array.shape != (ref.EPOCHS,) or not np.allclose(array, rerun, rtol=1e-4, atol=1e-5):
            raise CheckFailure(
                f"the notebook's `{name}` ({_fmt(array)}) differs from a fresh run of your parts "
                f"({_fmt(rerun)}): run the cells in order, and keep the training loop as given.",
                hint="notebook.history_differs",
            )
    yield "the notebook's recorded history matches a fresh run of your parts"


# ---------------------------------------------------------------- plots


def _plots_gradable(obs: Observation, parts: tuple[str, ...] = inputs.PARTS) -> str | None:
    """None when the figure is to be checked; otherwise why it is not graded (full points).

    Both policies: 0 when none of the student's parts passes its own checks. "each mistake costs once": a
    figure that shows the output of a wrong part is not graded (the mistake already cost its points).
    "whole notebook": every figure is checked as the notebook drew it.
    """
    shown = _statuses(obs, parts)
    _earned(_get(obs, "statuses"))
    policy = policy_of(obs)
    wrong = [part for part, status in shown.items() if status != "ok"]
    if wrong and policy == EACH_MISTAKE_ONCE:
        return (
            f"plots not graded, with full points: they show the output of {', '.join(wrong)}, "
            f"whose own checks failed and already cost points ({_policy_note(policy)})"
        )
    return None


def _noting_policy(parts: tuple[str, ...]) -> Callable[[Callable[[Observation], Iterator[str]]],
                                                      Callable[[Observation], Iterator[str]]]:
    """"whole notebook": a figure that fails because it shows a wrong part's output says so, and why it costs."""

    def decorate(check: Callable[[Observation], Iterator[str]]) -> Callable[[Observation], Iterator[str]]:
        def noted(obs: Observation) -> Iterator[str]:
            try:
                yield from check(obs)
            except Refused:
                raise
            except CheckFailure as exc:
                policy = policy_of(obs)
                statuses = obs.get("statuses") if isinstance(obs.get("statuses"), Mapping) else {}
                wrong = [part for part in parts if statuses.get(part) == "wrong"]
                if policy != WHOLE_NOTEBOOK or not wrong or _policy_note(policy) in str(exc):
                    raise
                raise CheckFailure(f"{exc} (this figure shows the output of your {', '.join(wrong)}, which failed "
                                   f"its own checks: {_policy_note(policy)})", hint=exc.hint) from None

        noted.__name__, noted.__doc__ = check.__name__, check.__doc__
        return noted

    return decorate


def _expect_lab_run(obs: Observation, figure: str, with_losses: bool) -> Iterator[str]:
    """"whole notebook": the figures of training earn points only when they show the lab's run, the seed lab's
    table (the tolerances of test_convergence_fit), not just any run drawn faithfully (a train that does
    nothing draws flat lines faithfully)."""
    policy = policy_of(obs)
    if policy != WHOLE_NOTEBOOK:
        return
    w, b = _name(obs, "list_w"), _name(obs, "list_b")
    losses = _floats_of(_get(obs, "losses"), "losses") if with_losses else None
    for epoch, (seed_w, seed_b, seed_loss) in enumerate(ref.SEED_LAB_TABLE):
        if epoch >= w.size or epoch >= b.size or (losses is not None and epoch >= losses.size):
            raise CheckFailure(f"the {figure} shows fewer than {ref.EPOCHS} epochs ({_policy_note(policy)}).",
                               hint="plot.not_the_lab_run")
        got_w, got_b = float(w.ravel()[epoch]), float(b.ravel()[epoch])
        off = abs(got_w - seed_w) > ref.TABLE_WB_TOLERANCE or abs(got_b - seed_b) > ref.TABLE_WB_TOLERANCE
        if off or not (np.isfinite(got_w) and np.isfinite(got_b)) or (
            losses is not None and not abs(float(losses[epoch]) - seed_loss) <= ref.TABLE_LOSS_RTOL * seed_loss
        ):
            shown = f"w={got_w:.2f}, b={got_b:.2f}" + (f", loss {float(losses[epoch]):.5f}" if losses is not None
                                                      else "")
            expected = f"w={seed_w:.2f}, b={seed_b:.2f}" + (f", loss {seed_loss:.5f}" if losses is not None else "")
            raise CheckFailure(
                f"the {figure} shows your run at epoch {epoch} with {shown}; the lab's table has {expected}. "
                f"Under the {_policy_note(policy)} this figure earns points only when it shows the lab's run.",
                hint="plot.not_the_lab_run",
            )
    yield f"the {figure} shows the lab's run ({_policy_note(policy)})"


def _floats_of(values: Any, name: str) -> np.ndarray:
    if values is None:
        raise CheckFailure(f"the notebook has no usable `{name}`: run the training loop cell first.",
                           hint="notebook.history_missing")
    return np.asarray([float(v) for v in values], dtype=np.float64)


def _all_axes(obs: Observation) -> list[Mapping[str, Any]]:
    return [axes for figure in _get(obs, "figures") for axes in figure if "error" not in axes]


def _scatter_figures(obs: Observation) -> list[Mapping[str, Any]]:
    return [
        axes for axes in _all_axes(obs)
        if axes["collections"] >= 2 and list(axes["legend"][:2]) == ["Real Data", "Predicted Data"]
    ]


def _offsets(record: Any) -> tuple[np.ndarray, np.ndarray]:
    offsets = _array(record)
    if offsets.ndim != 2 or offsets.shape[1] != 2:
        offsets = offsets.reshape(-1, 2) if offsets.size % 2 == 0 else np.zeros((0, 2))
    return offsets[:, 0], offsets[:, 1]


def _expect_scatter(axes: Mapping[str, Any], x: Any, y: Any, predicted: Any, which: str) -> None:
    real_x, real_y = _offsets(axes["offsets"][0])
    pred_x, pred_y = _offsets(axes["offsets"][1])
    for name, got, expected in (
        ("real data x", real_x, x), ("real data y", real_y, y),
        ("predictions x", pred_x, x), ("predictions y", pred_y, predicted),
    ):
        expected = np.asarray(expected, dtype=np.float64).ravel()
        if got.shape != expected.shape or not np.allclose(got, expected, rtol=1e-5, atol=1e-5):
            raise CheckFailure(
                f"the {which} scatter plot's {name} is {_fmt(got)}; expected {_fmt(expected)}.",
                hint="plot.scatter_data_wrong",
            )


@_noting_policy(("Model",))
def check_plot_data(obs: Observation) -> Iterator[str]:
    # Drawn before train exists: it shows the data and the untrained Model only.
    reason = _plots_gradable(obs, ("Model",))
    if reason:
        yield reason
        return
    scatters = _scatter_figures(obs)
    if not scatters:
        raise CheckFailure(
            "no figure with the legend 'Real Data', 'Predicted Data' was drawn: run the cell "
            "that calls plot_data(xs, ys, model(xs)).", hint="plot.data_not_drawn",
        )
    xs, ys = ref.training_data()
    predicted = (ref.INITIAL_W * xs + ref.INITIAL_B).astype(np.float32)
    _expect_scatter(scatters[0], xs, ys, predicted, "first")
    yield "the first scatter shows the data and the untrained model's predictions, with its legend"


def _name(obs: Observation, name: str) -> np.ndarray:
    record = _get(obs, "names").get(name)
    if record is None:
        raise CheckFailure(f"the notebook has no `{name}`: run the cells above this one in order.",
                           hint="notebook.name_missing")
    return _numeric(f"`{name}`", record)


@_noting_policy(inputs.PARTS)
def check_plot_history(obs: Observation) -> Iterator[str]:
    reason = _plots_gradable(obs)
    if reason:
        yield reason
        return
    expected_labels = ["w", "b", "True w", "True b"]
    for axes in _all_axes(obs):
        if list(axes["legend"]) == expected_labels:
            lines = axes["lines"]
            break
    else:
        raise CheckFailure(
            "no figure with the legend 'w', 'b', 'True w', 'True b' was drawn: run the cell that "
            "plots the history of w and b.", hint="plot.history_not_drawn",
        )
    if len(lines) < 4:
        raise CheckFailure(f"the history plot has {len(lines)} lines; expected 4 (w, b, true w, true b).",
                           hint="plot.history_line_wrong")
    epochs = np.arange(ref.EPOCHS)
    expectations = (
        ("w", _name(obs, "list_w")),
        ("b", _name(obs, "list_b")),
        ("true w", np.full(ref.EPOCHS, ref.TRUE_W)),
        ("true b", np.full(ref.EPOCHS, ref.TRUE_B)),
    )
    for line, (name, values) in zip(lines, expectations, strict=False):  # extra lines are allowed
        x, y = (_array(d) for d in line)
        if x.shape != epochs.shape or not np.allclose(x, epochs) or not np.allclose(y, values, atol=1e-6):
            raise CheckFailure(
                f"the history plot's '{name}' line is ({_fmt(x)}, {_fmt(y)}); "
                f"expected epochs 0-14 against {_fmt(values)}.", hint="plot.history_line_wrong",
            )
    yield "the history plot shows w and b per epoch against the true values"
    yield from _expect_lab_run(obs, "history plot", with_losses=False)


@_noting_policy(inputs.PARTS)
def check_plot_loss_weights(obs: Observation) -> Iterator[str]:
    reason = _plots_gradable(obs)
    if reason:
        yield reason
        return
    scatters = _scatter_figures(obs)
    if len(scatters) < 2:
        raise CheckFailure(
            "the test-set scatter plot was not drawn: run the cell that calls "
            "plot_data(test_inputs, test_outputs, predicted_test_outputs).", hint="plot.test_scatter_not_drawn",
        )
    test_inputs = _name(obs, "test_inputs")
    predicted = _name(obs, "predicted_test_outputs")
    _expect_scatter(scatters[1], test_inputs, ref.TRUE_W * test_inputs + ref.TRUE_B, predicted, "test-set")
    yield "the test-set scatter shows the test data and the trained model's predictions"
    recorded_losses = _get(obs, "losses")
    if recorded_losses is None:
        raise CheckFailure("the notebook has no usable `losses`: run the training loop cell first.",
                           hint="notebook.history_missing")
    losses = np.asarray([float(v) for v in recorded_losses])
    panels = [axes for axes in _all_axes(obs) if axes["ylabel"] == "Loss" and axes["xlabel"] in ("w", "b")]
    by_name = {axes["xlabel"]: axes for axes in panels}
    if set(by_name) != {"w", "b"}:
        raise CheckFailure(
            "the loss-against-weights figure needs two panels with x labels 'w' and 'b' and y label "
            f"'Loss'; found panels for {sorted(by_name) or 'none'}.", hint="plot.loss_panels_missing",
        )
    for name in ("w", "b"):
        values = _name(obs, f"list_{name}")
        for line in by_name[name]["lines"]:
            x, y = (_array(d) for d in line)
            if x.shape != values.shape or not (np.allclose(x, values) and np.allclose(y, losses)):
                raise CheckFailure(
                    f"the '{name}' panel plots ({_fmt(x)}, {_fmt(y)}); expected the history of {name} "
                    f"against the losses ({_fmt(values)}, {_fmt(losses)}).", hint="plot.loss_panel_wrong",
                )
    yield "the loss is plotted against the history of w and of b"
    yield from _expect_lab_run(obs, "loss-against-weights figure", with_losses=True)


# ---------------------------------------------------------------- groups

CHECKS: dict[str, Callable[[Observation], Iterator[str]]] = {
    "test_model_variables": check_model_variables,
    "test_model_output": check_model_output,
    "test_loss_values": check_loss_values,
    "test_loss_properties": check_loss_properties,
    "test_train_step": check_train_step,
    "test_train_state": check_train_state,
    "test_convergence_fit": check_convergence_fit,
    "test_convergence_history": check_convergence_history,
    "test_plot_data": check_plot_data,
    "test_plot_history": check_plot_history,
    "test_plot_loss_weights": check_plot_loss_weights,
}
GRADE_IDS: tuple[str, ...] = tuple(CHECKS)


def area(grade_id: str) -> str:
    """The part a grade id checks, as its hint ids name it: test_loss_values -> loss."""
    return grade_id.split("_")[1] if grade_id.count("_") >= 2 else "code"


def _run_check(check: Callable[[Observation], Iterator[str]], obs: Observation, part: str = "code") -> Result:
    passed: list[str] = []
    try:
        passed.extend(check(obs))
    except StudentError as exc:
        hint = exc.hint or f"{part}.{'not_implemented' if exc.not_implemented else 'raises'}"
        return Result("not implemented" if exc.not_implemented else "error", False, str(exc), hint)
    except CheckFailure as exc:
        return Result("failed", False, str(exc), exc.hint or f"{part}.other")
    except Exception as exc:  # a malformed (forged or truncated) observation earns nothing
        return Result("malformed", False, f"the hidden tests' record of this cell is unusable ({type(exc).__name__}).",
                      "record.malformed")
    return Result("passed", True, "\n".join(passed))


def judge(grade_id: str, observation: Observation) -> Result:
    """Decide one grade cell from its observation."""
    if grade_id not in CHECKS:
        raise KeyError(f"no checks for grade id {grade_id!r}; known: {', '.join(GRADE_IDS)}")
    if not isinstance(observation, Mapping):
        return Result("malformed", False, "the hidden tests' record of this cell is unusable.", "record.malformed")
    return _run_check(CHECKS[grade_id], observation, area(grade_id))


# ---------------------------------------------------------------- hint ids

# Every failure's stable id and what it means, for the class report (coursekit/report/): the report counts
# these ids, so a message can be reworded without losing its history. An id is never reused for another
# mistake; a new failure gets a new id here (tests/test_report.py checks that every id raised is listed).
HINTS: dict[str, str] = {
    # the notebook or the run, whatever the part
    "notebook.name_undefined": "a part is not defined (its cell was not run, or it was renamed)",
    "notebook.no_record": "the hidden tests recorded nothing (the notebook was not run from the top)",
    "notebook.steps_out_of_order": "cells run out of order",
    "notebook.no_training_run": "no training run was recorded",
    "notebook.history_missing": "list_w, list_b or losses missing (training loop not run)",
    "notebook.history_differs": "the notebook's history differs from a fresh run of its parts",
    "notebook.name_missing": "a variable the plots need is missing",
    "result.not_a_number": "a part returned something that is not a number or tensor",
    "record.malformed": "the hidden tests' record is unusable",
    "cell.hidden_tests_timeout": "the hidden tests ran out of time",
    "cell.timeout": "the cell ran out of time",
    "cell.not_run": "the hidden tests did not run (the kernel stopped before)",
    "cell.tampered": "the cell's output was cleared or forged",
    "kernel.died": "the kernel died",
    "grader.no_stand_ins": "graded without the kit's stand-ins",
    "grader.observer_error": "the grader could not observe the code",
    "parts.not_implemented": "a part these checks need is not implemented",
    "parts.no_result": "a part these checks need has no result",
    "parts.none_of_your_own": "no part of the student's own passes its checks: no integration points (policy)",
    "policy.unknown": "the course's grading policy setting is not a known one",
    **{f"{part}.other": f"a failed {part} check with no id of its own"
       for part in ("model", "loss", "train", "convergence", "plot", "code")},
    # Model
    "model.not_implemented": "Model not implemented",
    "model.raises": "Model raises an error",
    "model.missing_attribute": "no self.w or self.b",
    "model.not_a_variable": "w or b is not a tf.Variable",
    "model.not_float32": "integer initial values (int32 variables)",
    "model.not_trainable": "w or b not trainable",
    "model.initial_values_swapped": "initial w and b swapped",
    "model.old_comment_values": "initial values of the seed lab's old comment (w=2, b=1)",
    "model.wrong_initial_values": "wrong initial values",
    "model.shared_class_variables": "variables as class attributes, shared by every Model()",
    "model.call_swapped": "__call__ returns b*x + w",
    "model.bias_missing": "__call__ forgets the bias (w*x)",
    "model.weight_missing": "__call__ forgets the weight (x + b)",
    "model.multiplied_by_bias": "__call__ multiplies by the bias (w*x*b)",
    "model.wrong_output": "wrong output",
    "model.output_shape": "output of the wrong shape (a matrix product or a reduction)",
    "model.values_copied_in_init": "__call__ uses values copied in __init__",
    "model.no_gradient": "no gradient flows through Model (.numpy() or NumPy)",
    # loss
    "loss.not_implemented": "loss not implemented",
    "loss.raises": "loss raises an error",
    "loss.sum_instead_of_mean": "summed the squared errors instead of averaging them",
    "loss.absolute_error": "mean absolute error instead of squared",
    "loss.root_mean_squared": "root mean squared error (RMSE)",
    "loss.not_squared": "errors not squared",
    "loss.halved": "half the mean squared error",
    "loss.sum_of_absolute_errors": "sum of absolute errors",
    "loss.wrong_value": "wrong loss value",
    "loss.not_a_scalar": "per-example losses, not a scalar",
    "loss.no_gradient": "no gradient flows through the loss (.numpy() or NumPy)",
    # train
    "train.not_implemented": "train not implemented",
    "train.raises": "train raises an error",
    "train.no_update": "w and b not updated",
    "train.gradient_ascent": "adds the gradient (gradient ascent)",
    "train.gradients_swapped": "gradients of w and b swapped",
    "train.learning_rate_ignored": "ignores the learning rate",
    "train.fixed_learning_rate": "a fixed learning rate instead of the argument",
    "train.bias_not_updated": "b not updated",
    "train.weight_not_updated": "w not updated",
    "train.wrong_step": "wrong step",
    "train.return_not_scalar": "returns something other than the scalar loss",
    "train.returns_loss_after_update": "returns the loss after the update",
    "train.wrong_return": "returns a wrong loss",
    "train.replaces_variables": "replaces w and b with new objects instead of updating them",
    "train.global_model": "updates the notebook's global model, not its argument",
    "train.variables_unreadable": "w or b no longer a single number after train",
    "train.state_between_calls": "state carried between calls",
    # convergence and plots
    "convergence.not_implemented": "a part of the training run not implemented",
    "convergence.raises": "the training run raises an error",
    "convergence.off_the_table": "the training run departs from the lab's table",
    "convergence.loss_rises": "the loss rises during training",
    "plot.not_implemented": "a part a plot needs is not implemented",
    "plot.raises": "a plot cell raises an error",
    "plot.data_not_drawn": "the data scatter plot not drawn",
    "plot.scatter_data_wrong": "a scatter plot shows the wrong data",
    "plot.history_not_drawn": "the history plot not drawn",
    "plot.history_line_wrong": "the history plot's lines are wrong",
    "plot.test_scatter_not_drawn": "the test-set scatter plot not drawn",
    "plot.loss_panels_missing": "the loss-against-weights panels missing",
    "plot.loss_panel_wrong": "a loss-against-weights panel is wrong",
    "plot.not_the_lab_run": "a figure does not show the lab's run (whole-notebook policy)",
}

