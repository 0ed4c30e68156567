"""Pure checks: from the notebook's namespace to results, one group of checks per grade cell.

Every check grades one part in isolation (docs/grading.md):
- model checks use only `Model`;
- loss checks use only `loss`;
- train checks run the student's `train` on a reference model with the reference loss;
- convergence reruns the notebook's schedule, with the reference standing in for any part
  that fails its own checks;
- plot checks read the figures' artists, and are waived when an attempted part is wrong
  (its points are already lost), but not when a part was never attempted.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import tensorflow as tf

from . import reference as ref
from .isolation import StudentError, call, rebind


@dataclass(frozen=True)
class Result:
    check: str
    passed: bool
    message: str


class CheckFailure(Exception):
    """An expectation was not met; the message says what, what came back, and the likely cause."""


Namespace = Mapping[str, Any]
Figures = list[Any]


def _fmt(value: Any) -> str:
    array = np.asarray(value)
    if array.size > 6:
        return f"an array of shape {array.shape} starting {np.array2string(array.ravel()[:4], precision=4)}"
    return np.array2string(array, precision=5) if array.ndim else f"{float(array):.6g}"


def _numeric(description: str, value: Any) -> np.ndarray:
    try:
        array = np.asarray(value, dtype=np.float64)
    except Exception as exc:
        raise CheckFailure(
            f"{description} returned {type(value).__name__}, which is not a number or tensor: {exc}"
        ) from exc
    return array


def _lookup(ns: Namespace, name: str, kind: str) -> Any:
    if name not in ns:
        raise StudentError(
            f"`{name}` is not defined: run the cell that defines your {kind}, and keep its name.",
            not_implemented=True,
        )
    return ns[name]


# ---------------------------------------------------------------- model


def _fresh_model(ns: Namespace) -> Any:
    model_class = _lookup(ns, "Model", "model class")
    return call("Model()", model_class)


def _variables(model: Any) -> tuple[Any, Any]:
    missing = [name for name in ("w", "b") if not hasattr(model, name)]
    if missing:
        raise CheckFailure(
            f"Model() has no attribute {' or '.join(missing)}: store the weight as `self.w` "
            "and the bias as `self.b`."
        )
    return model.w, model.b


def check_model_variables(ns: Namespace) -> Iterator[str]:
    model = _fresh_model(ns)
    w, b = _variables(model)
    for name, var in (("w", w), ("b", b)):
        if not isinstance(var, tf.Variable):
            raise CheckFailure(
                f"model.{name} is a {type(var).__name__}, expected a tf.Variable: gradient "
                f"descent can only update a variable. Write `self.{name} = tf.Variable(...)`."
            )
        if var.dtype != tf.float32:
            raise CheckFailure(
                f"model.{name} has dtype {var.dtype.name}, expected float32: "
                f"write the initial value as a float (`4.0`, not `4`)."
            )
        if not var.trainable:
            raise CheckFailure(f"model.{name} is not trainable: leave `trainable` at its default, True.")
    yield "w and b are trainable float32 tf.Variables"
    got = (float(w.numpy()), float(b.numpy()))
    if got != (ref.INITIAL_W, ref.INITIAL_B):
        hint = ""
        if got == (ref.INITIAL_B, ref.INITIAL_W):
            hint = " It looks like w and b are swapped."
        elif got == (2.0, 1.0):
            hint = " Those are the values of an old comment: the lab starts from w=1.0 and b=4.0."
        raise CheckFailure(
            f"a new Model() starts at w={got[0]:g}, b={got[1]:g}; expected w=1.0, b=4.0.{hint}"
        )
    yield "a new Model() starts at w=1.0 and b=4.0"
    other = _fresh_model(ns)
    other_w, other_b = _variables(other)
    if other_w is w or other_b is b:
        raise CheckFailure(
            "two Model() objects share the same variables: create them in __init__ "
            "(`self.w = tf.Variable(1.0)`), not as class attributes."
        )
    yield "each Model() has its own variables"


def _model_output(model: Any, x: Any, what: str) -> np.ndarray:
    return _numeric(what, call(what, model, x))


def check_model_output(ns: Namespace) -> Iterator[str]:
    # Sets w and b itself, so a wrong initial value costs model-variable points only.
    model = _fresh_model(ns)
    w, b = _variables(model)
    for name, var in (("w", w), ("b", b)):
        if not isinstance(var, tf.Variable):
            raise CheckFailure(
                f"model.{name} is a {type(var).__name__}, not a tf.Variable, so its value cannot be set "
                "to test the output: make w and b tf.Variables."
            )
    call("setting w=1.5 and b=-0.5", lambda: (w.assign(tf.cast(1.5, w.dtype)), b.assign(tf.cast(-0.5, b.dtype))))
    got = _model_output(model, 2.0, "model(2.0)")
    if got.shape != () or not np.isclose(got, 2.5, rtol=1e-6):
        raise CheckFailure(
            f"with w=1.5 and b=-0.5, model(2.0) returned {_fmt(got)}; expected w*x + b = 2.5."
            + _model_hint(got, 2.0, 1.5, -0.5)
        )
    yield "model(2.0) == w*2 + b for a scalar"
    x = np.array([-1.5, 0.0, 0.5, 2.0, 3.0], dtype=np.float32)
    got = _model_output(model, tf.constant(x), "model(x) for a vector x")
    expected = 1.5 * x - 0.5
    if got.shape != x.shape:
        raise CheckFailure(
            f"model(x) for x of shape {x.shape} returned shape {got.shape}; expected one output "
            "per input, the same shape as x: use elementwise `*` and `+`, not a matrix product "
            "or a reduction."
        )
    if not np.allclose(got, expected, rtol=1e-6, atol=1e-6):
        raise CheckFailure(
            f"with w=1.5 and b=-0.5, model(x) for x={_fmt(x)} returned {_fmt(got)}; expected "
            f"w*x + b = {_fmt(expected)}." + _model_hint(got, x, 1.5, -0.5)
        )
    yield "model(x) == w*x + b elementwise for a vector"
    call("setting w=3 and b=-2", lambda: (w.assign(tf.cast(3.0, w.dtype)), b.assign(tf.cast(-2.0, b.dtype))))
    got = _model_output(model, tf.constant(x), "model(x) after changing w and b")
    if got.shape != x.shape or not np.allclose(got, 3.0 * x - 2.0, rtol=1e-6, atol=1e-6):
        raise CheckFailure(
            "after setting w=3 and b=-2, model(x) returned "
            f"{_fmt(got)} instead of {_fmt(3.0 * x - 2.0)}: __call__ must read self.w and self.b "
            "each time, not values copied in __init__."
        )
    yield "the output follows the current values of w and b"
    with tf.GradientTape() as tape:
        out = call("model(x) under a GradientTape", model, tf.constant(x))
        total = tf.reduce_sum(out) if isinstance(out, (tf.Tensor, tf.Variable)) else None
    grads = tape.gradient(total, [w, b]) if total is not None else [None, None]
    if any(g is None for g in grads):
        raise CheckFailure(
            "no gradient flows from model(x) back to w and b: compute the output with "
            "TensorFlow operations on the variables, without .numpy() or NumPy functions."
        )
    yield "gradients flow from the output to w and b"


def _model_hint(got: np.ndarray, x: Any, w: float, b: float) -> str:
    x = np.asarray(x, dtype=np.float64)
    if got.shape != np.shape(x):
        return ""
    candidates = {
        " It looks like w and b are swapped in __call__ (b*x + w).": b * x + w,
        " It looks like the bias is missing (w*x).": w * x,
        " It looks like the weight is missing (x + b).": x + b,
        " It looks like you multiplied by the bias (w*x*b).": w * x * b,
    }
    for hint, value in candidates.items():
        if np.allclose(got, value, rtol=1e-6, atol=1e-6):
            return hint
    return ""


# ---------------------------------------------------------------- loss

_LOSS_MISTAKES: tuple[tuple[str, Callable[[np.ndarray], float]], ...] = (
    ("did you sum the squared errors instead of averaging them? Use tf.reduce_mean.",
     lambda d: float(np.sum(d**2))),
    ("did you take the absolute error instead of squaring it? Use tf.square.",
     lambda d: float(np.mean(np.abs(d)))),
    ("did you take the square root (RMSE)? The loss is the mean of the squared errors, no root.",
     lambda d: float(np.sqrt(np.mean(d**2)))),
    ("did you forget to square the errors? Use tf.square(predicted_y - target_y).",
     lambda d: float(np.mean(d))),
    ("did you forget to square the errors? Use tf.square(predicted_y - target_y).",
     lambda d: float(np.mean(-d))),
    ("did you halve the loss? The lab's MSE has no 1/2 factor.",
     lambda d: float(0.5 * np.mean(d**2))),
    ("did you sum the absolute errors? Use the mean of the squared errors.",
     lambda d: float(np.sum(np.abs(d)))),
)


def _loss_value(loss_fn: Any, predicted: np.ndarray, target: np.ndarray) -> np.ndarray:
    out = call("loss(predicted_y, target_y)", loss_fn, tf.constant(predicted), tf.constant(target))
    return _numeric("loss(predicted_y, target_y)", out)


def _expect_loss(got: np.ndarray, predicted: np.ndarray, target: np.ndarray, where: str) -> None:
    difference = predicted.astype(np.float64) - target.astype(np.float64)
    expected = float(np.mean(difference**2))
    if got.shape != ():
        raise CheckFailure(
            f"loss on {where} returned shape {got.shape}; expected a single number (shape ()): "
            "average over the examples with tf.reduce_mean."
        )
    if np.isclose(got, expected, rtol=1e-5, atol=1e-7):
        return
    message = f"loss on {where} returned {float(got):.6g}; expected {expected:.6g} (the mean squared error)."
    for hint, mistake in _LOSS_MISTAKES:
        if np.isclose(got, mistake(difference), rtol=1e-5, atol=1e-7):
            if hint.startswith("did you sum the squared"):
                message += f" That is {float(got) / expected:.0f}x the expected value:"
            raise CheckFailure(f"{message} {hint}")
    raise CheckFailure(message)


def check_loss_values(ns: Namespace) -> Iterator[str]:
    loss_fn = _lookup(ns, "loss", "loss function")
    predicted = np.array([1.0, 2.0, 3.0, 4.0], dtype=np.float32)
    target = np.array([2.0, 2.0, 5.0, 0.0], dtype=np.float32)
    _expect_loss(_loss_value(loss_fn, predicted, target), predicted, target, "known values")
    yield "loss([1, 2, 3, 4], [2, 2, 5, 0]) == 5.25"
    rng = np.random.default_rng(20261125)
    for size in (1, 7, 1000):
        predicted = rng.normal(size=size).astype(np.float32) * 3
        target = rng.normal(size=size).astype(np.float32) * 3
        _expect_loss(_loss_value(loss_fn, predicted, target), predicted, target, f"{size} random values")
    yield "the loss matches the mean squared error on random inputs"


def check_loss_properties(ns: Namespace) -> Iterator[str]:
    loss_fn = _lookup(ns, "loss", "loss function")
    predicted = np.array([0.5, -1.0, 2.0], dtype=np.float32)
    target = np.array([1.0, 1.0, 1.0], dtype=np.float32)
    out = call("loss(predicted_y, target_y)", loss_fn, tf.constant(predicted), tf.constant(target))
    if np.shape(out) != ():
        raise CheckFailure(
            f"loss returned shape {np.shape(out)}; expected a scalar: one number for the whole "
            "batch, averaged with tf.reduce_mean."
        )
    yield "the loss is a scalar"
    variable = tf.Variable(predicted)
    with tf.GradientTape() as tape:
        out = call("loss(predicted_y, target_y) under a GradientTape", loss_fn, variable, tf.constant(target))
    try:
        grad = tape.gradient(out, variable)
    except Exception:
        grad = None
    if grad is None:
        raise CheckFailure(
            "no gradient flows through your loss: compute it with TensorFlow operations "
            "(tf.square, tf.reduce_mean), without .numpy() or NumPy functions, so that "
            "GradientTape can differentiate it."
        )
    yield "gradients flow through the loss"


# ---------------------------------------------------------------- train

_TRAIN_X = np.array([-1.0, 0.5, 2.0, 3.0], dtype=np.float32)
_TRAIN_Y = (ref.TRUE_W * _TRAIN_X + ref.TRUE_B).astype(np.float32)


def _isolated_train(ns: Namespace, loss_fn: Any = None, model_class: Any = None) -> Any:
    train = _lookup(ns, "train", "training step")
    return rebind(train, loss=loss_fn or ref.loss, Model=model_class or ref.Model)


def _start_model(w: float = ref.INITIAL_W, b: float = ref.INITIAL_B) -> ref.Model:
    model = ref.Model()
    model.w.assign(w)
    model.b.assign(b)
    return model


def _train_call(train: Any, model: Any, lr: float) -> Any:
    return call(
        f"train(model, inputs, outputs, learning_rate={lr})",
        train, model, tf.constant(_TRAIN_X), tf.constant(_TRAIN_Y), lr,
    )


def _step_hint(got_w: float, got_b: float, start: ref.Step, lr: float) -> str:
    expected = ref.gd_step(start.w, start.b, _TRAIN_X, _TRAIN_Y, lr)
    dw, db = (start.w - expected.w) / lr, (start.b - expected.b) / lr
    if np.isclose(got_w, start.w) and np.isclose(got_b, start.b):
        return " w and b did not change: update the variables in place with assign_sub (or assign)."
    if np.isclose(got_w, start.w + lr * dw, rtol=1e-4) and np.isclose(got_b, start.b + lr * db, rtol=1e-4):
        return " You moved up the gradient: gradient descent subtracts learning_rate * gradient."
    if np.isclose(got_w, start.w - lr * db, rtol=1e-4) and np.isclose(got_b, start.b - lr * dw, rtol=1e-4):
        return " The gradients of w and b are swapped: t.gradient returns them in the order you pass the variables."
    if np.isclose(got_w, start.w - dw, rtol=1e-4) and np.isclose(got_b, start.b - db, rtol=1e-4):
        return " The step ignores the learning rate: subtract learning_rate * gradient."
    for other_lr in (0.1, 0.01, 0.001):
        step = ref.gd_step(start.w, start.b, _TRAIN_X, _TRAIN_Y, other_lr)
        if other_lr != lr and np.isclose(got_w, step.w, rtol=1e-4) and np.isclose(got_b, step.b, rtol=1e-4):
            return f" That is a step with learning rate {other_lr}: use the learning_rate argument."
    if np.isclose(got_w, start.w - lr * dw, rtol=1e-4) and np.isclose(got_b, start.b):
        return " b was not updated."
    if np.isclose(got_b, start.b - lr * db, rtol=1e-4) and np.isclose(got_w, start.w):
        return " w was not updated."
    return ""


def check_train_step(ns: Namespace) -> Iterator[str]:
    train = _isolated_train(ns)
    for lr in (0.1, 0.05, 0.3):
        model = _start_model()
        returned = _train_call(train, model, lr)
        expected = ref.gd_step(ref.INITIAL_W, ref.INITIAL_B, _TRAIN_X, _TRAIN_Y, lr)
        got_w, got_b = float(model.w.numpy()), float(model.b.numpy())
        if not np.allclose((got_w, got_b), (expected.w, expected.b), rtol=1e-5, atol=1e-6):
            start = ref.Step(ref.INITIAL_W, ref.INITIAL_B, expected.loss)
            raise CheckFailure(
                f"one step from w=1, b=4 with learning_rate={lr} gave w={got_w:.6g}, b={got_b:.6g}; "
                f"expected w={expected.w:.6g}, b={expected.b:.6g}.{_step_hint(got_w, got_b, start, lr)}"
            )
        value = _numeric("train(...)", returned)
        if value.shape != ():
            raise CheckFailure(f"train returned shape {value.shape}; expected the scalar loss.")
        if not np.isclose(value, expected.loss, rtol=1e-5):
            after = ref.gd_step(expected.w, expected.b, _TRAIN_X, _TRAIN_Y, lr).loss
            hint = (" That is the loss after the update: return the loss computed inside the tape, before it."
                    if np.isclose(value, after, rtol=1e-4) else "")
            raise CheckFailure(
                f"train returned {float(value):.6g}; expected the loss before the update, "
                f"{expected.loss:.6g}.{hint}"
            )
    yield "one step from a known state gives the expected w and b at learning rates 0.1, 0.05 and 0.3"
    yield "train returns the loss before the update"


def check_train_state(ns: Namespace) -> Iterator[str]:
    train = _isolated_train(ns)
    model = _start_model()
    w_before, b_before = model.w, model.b
    notebook_model = ns.get("model")
    notebook_state = _variable_values(notebook_model)
    _train_call(train, model, 0.1)
    if model.w is not w_before or model.b is not b_before:
        raise CheckFailure(
            "train replaced model.w or model.b with new objects: update the existing variables "
            "in place (model.w.assign_sub(...)) so every reference to them sees the change."
        )
    if not isinstance(model.w, tf.Variable) or not isinstance(model.b, tf.Variable):
        raise CheckFailure("after train, model.w or model.b is no longer a tf.Variable.")
    if not _same_values(_variable_values(notebook_model), notebook_state):
        raise CheckFailure(
            "train changed the notebook's global `model` instead of the model passed in: "
            "use the `model` argument."
        )
    yield "train updates the model passed in, in place, keeping the same tf.Variable objects"
    # Whatever rule train applies, a second call must do what a first call does from that state.
    after_one = (float(model.w.numpy()), float(model.b.numpy()))
    twice = _numeric("the second train(...) call", _train_call(train, model, 0.1))
    fresh = _start_model(*after_one)
    once = _numeric("train(...) on a fresh model", _train_call(train, fresh, 0.1))
    got = (float(model.w.numpy()), float(model.b.numpy()))
    expected = (float(fresh.w.numpy()), float(fresh.b.numpy()))
    if not np.allclose(got, expected, rtol=1e-5, atol=1e-6) or not np.allclose(twice, once, rtol=1e-5):
        raise CheckFailure(
            f"a second call moved w, b from {after_one[0]:.6g}, {after_one[1]:.6g} to {got[0]:.6g}, "
            f"{got[1]:.6g}, but a first call from that same state moves them to {expected[0]:.6g}, "
            f"{expected[1]:.6g}: each call must take exactly one step, with no state carried between "
            "calls (momentum, a counter, a cached gradient or optimizer built once for other variables)."
        )
    yield "each call takes exactly one step, with no state carried between calls"


def _same_values(a: tuple[float, ...] | None, b: tuple[float, ...] | None) -> bool:
    # A diverged model holds NaN, which equals nothing: compare bit for bit instead.
    return a is None or b is None or np.array_equal(a, b, equal_nan=True)


def _variable_values(model: Any) -> tuple[float, ...] | None:
    try:
        return (float(model.w.numpy()), float(model.b.numpy()))
    except Exception:
        return None


# ---------------------------------------------------------------- parts and convergence

PART_CHECKS: dict[str, tuple[Callable[[Namespace], Iterator[str]], ...]] = {
    "Model": (check_model_variables, check_model_output),
    "loss": (check_loss_values, check_loss_properties),
    "train": (check_train_step, check_train_state),
}


# Later cells ask again about the same student objects: answer from memory. Keyed by identity, holding
# the objects themselves so an id cannot be reused; a part redefined in a later cell is a new key.
_STATUS_MEMO: dict[tuple[str, int], tuple[Any, str]] = {}


def part_status(ns: Namespace, part: str) -> str:
    """'ok', 'wrong' (attempted, fails its own checks) or 'missing' (not attempted)."""
    obj = ns.get(part)
    key = (part, id(obj))
    if obj is not None and key in _STATUS_MEMO and _STATUS_MEMO[key][0] is obj:
        return _STATUS_MEMO[key][1]
    status = "ok"
    for check in PART_CHECKS[part]:
        outcome = _run_check(check, ns)
        if not outcome.passed:
            status = "missing" if outcome.check == "not implemented" else "wrong"
            break
    if obj is not None:
        _STATUS_MEMO[key] = (obj, status)
    return status


def _statuses(ns: Namespace, parts: tuple[str, ...] = tuple(PART_CHECKS)) -> dict[str, str]:
    statuses = {part: part_status(ns, part) for part in parts}
    missing = [part for part, status in statuses.items() if status == "missing"]
    if missing:
        raise CheckFailure(
            f"{', '.join(missing)} {'is' if len(missing) == 1 else 'are'} not implemented yet: "
            "these checks need them to be attempted."
        )
    return statuses


@dataclass(frozen=True)
class History:
    w: list[float]
    b: list[float]
    loss: list[float]
    substituted: tuple[str, ...]


_RERUN_MEMO: dict[tuple[Any, ...], tuple[tuple[Any, ...], History]] = {}


def rerun_training(ns: Namespace, statuses: dict[str, str]) -> History:
    """The notebook's schedule, with the reference standing in for each part that is wrong.

    Both convergence cells ask for it: the second gets the first's run (same objects, same statuses).
    """
    parts = tuple(ns.get(part) for part in PART_CHECKS)
    key = (*map(id, parts), *sorted(statuses.items()))
    if key in _RERUN_MEMO and all(a is b for a, b in zip(_RERUN_MEMO[key][0], parts, strict=True)):
        return _RERUN_MEMO[key][1]
    history = _rerun(ns, statuses)
    _RERUN_MEMO[key] = (parts, history)
    return history


def _rerun(ns: Namespace, statuses: dict[str, str]) -> History:
    model_class = ns["Model"] if statuses["Model"] == "ok" else ref.Model
    loss_fn = ns["loss"] if statuses["loss"] == "ok" else ref.loss
    train_fn = ns["train"] if statuses["train"] == "ok" else ref.train
    train_fn = rebind(train_fn, loss=loss_fn, Model=model_class)
    xs, ys = _lab_data()
    model = call("Model()", model_class)
    history = History([], [], [], tuple(part for part, status in statuses.items() if status != "ok"))
    for epoch in range(ref.EPOCHS):
        history.w.append(float(model.w.numpy()))
        history.b.append(float(model.b.numpy()))
        current = call(f"train(...) at epoch {epoch}", train_fn, model, xs, ys, ref.LEARNING_RATE)
        history.loss.append(float(_numeric("train(...)", current)))
    return history


@functools.cache
def _lab_data() -> tuple[tf.Tensor, tf.Tensor]:
    # The data cell is locked and restored by nbgrader, so the lab's own draw is the notebook's. Drawn once:
    # each draw reseeds TensorFlow's global generator.
    return ref.training_data()


def _substitution_note(history: History) -> str:
    if not history.substituted:
        return ""
    return f" (run with the reference {', '.join(history.substituted)}, which failed its own checks)"


def check_convergence_fit(ns: Namespace) -> Iterator[str]:
    history = rerun_training(ns, _statuses(ns))
    note = _substitution_note(history)
    rows = zip(ref.SEED_LAB_TABLE, history.w, history.b, history.loss, strict=True)
    for epoch, ((seed_w, seed_b, seed_loss), w, b, loss_value) in enumerate(rows):
        if abs(w - seed_w) > ref.TABLE_WB_TOLERANCE or abs(b - seed_b) > ref.TABLE_WB_TOLERANCE:
            raise CheckFailure(
                f"at epoch {epoch} the training run{note} had w={w:.2f}, b={b:.2f}; "
                f"the lab's table has w={seed_w:.2f}, b={seed_b:.2f}."
            )
        if abs(loss_value - seed_loss) > ref.TABLE_LOSS_RTOL * seed_loss:
            raise CheckFailure(
                f"at epoch {epoch} the training run{note} had loss {loss_value:.5f}; "
                f"the lab's table has {seed_loss:.5f}."
            )
    yield f"15 epochs{note} follow the lab's table of w, b and loss"


def check_convergence_history(ns: Namespace) -> Iterator[str]:
    statuses = _statuses(ns)
    history = rerun_training(ns, statuses)
    rises = [epoch for epoch in range(1, len(history.loss)) if history.loss[epoch] >= history.loss[epoch - 1]]
    if rises:
        raise CheckFailure(
            f"the loss did not fall at epoch {rises[0]}: {history.loss[rises[0] - 1]:.5f} -> "
            f"{history.loss[rises[0]]:.5f}. With learning rate 0.1 every step should lower it."
        )
    yield "the loss falls every epoch"
    if history.substituted:
        yield "the notebook's own history is not compared, since a part was replaced"
        return
    recorded = {name: ns.get(name) for name in ("list_w", "list_b", "losses")}
    for name, rerun in (("list_w", history.w), ("list_b", history.b), ("losses", history.loss)):
        values = recorded[name]
        try:
            array = np.asarray([float(np.asarray(v)) for v in values])
        except Exception:
            raise CheckFailure(
                f"the notebook has no usable `{name}`: run the training loop cell before this one."
            ) from None
        if array.shape != (ref.EPOCHS,) or not np.allclose(array, rerun, rtol=1e-4, atol=1e-5):
            raise CheckFailure(
                f"the notebook's `{name}` ({_fmt(array)}) differs from a fresh run of your parts "
                f"({_fmt(rerun)}): run the cells in order, and keep the training loop as given."
            )
    yield "the notebook's recorded history matches a fresh run of your parts"


# ---------------------------------------------------------------- plots


def _plots_gradable(ns: Namespace, parts: tuple[str, ...] = tuple(PART_CHECKS)) -> str | None:
    """None when every part the figure shows is right; otherwise why the figure is not graded."""
    wrong = [part for part, status in _statuses(ns, parts).items() if status != "ok"]
    if wrong:
        return (
            f"plots not graded, with full points: they show the output of {', '.join(wrong)}, "
            "whose own checks failed and already cost points"
        )
    return None


def _scatter_figures(figures: Figures) -> list[Any]:
    found = []
    for figure in figures:
        for axes in figure.axes:
            legend = axes.get_legend()
            labels = [text.get_text() for text in legend.get_texts()] if legend else []
            if len(axes.collections) >= 2 and labels[:2] == ["Real Data", "Predicted Data"]:
                found.append(axes)
    return found


def _offsets(collection: Any) -> tuple[np.ndarray, np.ndarray]:
    offsets = np.asarray(collection.get_offsets(), dtype=np.float64)
    return offsets[:, 0], offsets[:, 1]


def _expect_scatter(axes: Any, x: Any, y: Any, predicted: Any, which: str) -> None:
    real_x, real_y = _offsets(axes.collections[0])
    pred_x, pred_y = _offsets(axes.collections[1])
    for name, got, expected in (
        ("real data x", real_x, x), ("real data y", real_y, y),
        ("predictions x", pred_x, x), ("predictions y", pred_y, predicted),
    ):
        expected = np.asarray(expected, dtype=np.float64).ravel()
        if got.shape != expected.shape or not np.allclose(got, expected, rtol=1e-5, atol=1e-5):
            raise CheckFailure(
                f"the {which} scatter plot's {name} is {_fmt(got)}; expected {_fmt(expected)}."
            )


def check_plot_data(ns: Namespace, figures: Figures) -> Iterator[str]:
    # Drawn before train exists: it shows the data and the untrained Model only.
    reason = _plots_gradable(ns, ("Model",))
    if reason:
        yield reason
        return
    scatters = _scatter_figures(figures)
    if not scatters:
        raise CheckFailure(
            "no figure with the legend 'Real Data', 'Predicted Data' was drawn: run the cell "
            "that calls plot_data(xs, ys, model(xs))."
        )
    xs, ys = _lab_data()
    _expect_scatter(scatters[0], xs, ys, ref.INITIAL_W * xs.numpy() + ref.INITIAL_B, "first")
    yield "the first scatter shows the data and the untrained model's predictions, with its legend"


def check_plot_history(ns: Namespace, figures: Figures) -> Iterator[str]:
    reason = _plots_gradable(ns)
    if reason:
        yield reason
        return
    expected_labels = ["w", "b", "True w", "True b"]
    for figure in figures:
        for axes in figure.axes:
            legend = axes.get_legend()
            if legend and [t.get_text() for t in legend.get_texts()] == expected_labels:
                lines = axes.get_lines()
                break
        else:
            continue
        break
    else:
        raise CheckFailure(
            "no figure with the legend 'w', 'b', 'True w', 'True b' was drawn: run the cell that "
            "plots the history of w and b."
        )
    if len(lines) < 4:
        raise CheckFailure(f"the history plot has {len(lines)} lines; expected 4 (w, b, true w, true b).")
    epochs = np.arange(ref.EPOCHS)
    expectations = (
        ("w", np.asarray(ns["list_w"], dtype=np.float64)),
        ("b", np.asarray(ns["list_b"], dtype=np.float64)),
        ("true w", np.full(ref.EPOCHS, ref.TRUE_W)),
        ("true b", np.full(ref.EPOCHS, ref.TRUE_B)),
    )
    for line, (name, values) in zip(lines, expectations, strict=False):  # extra lines are allowed
        x, y = (np.asarray(d, dtype=np.float64) for d in line.get_data())
        if x.shape != epochs.shape or not np.allclose(x, epochs) or not np.allclose(y, values, atol=1e-6):
            raise CheckFailure(
                f"the history plot's '{name}' line is ({_fmt(x)}, {_fmt(y)}); "
                f"expected epochs 0-14 against {_fmt(values)}."
            )
    yield "the history plot shows w and b per epoch against the true values"


def check_plot_loss_weights(ns: Namespace, figures: Figures) -> Iterator[str]:
    reason = _plots_gradable(ns)
    if reason:
        yield reason
        return
    scatters = _scatter_figures(figures)
    if len(scatters) < 2:
        raise CheckFailure(
            "the test-set scatter plot was not drawn: run the cell that calls "
            "plot_data(test_inputs, test_outputs, predicted_test_outputs)."
        )
    test_inputs = np.asarray(ns["test_inputs"], dtype=np.float64)
    predicted = np.asarray(ns["predicted_test_outputs"], dtype=np.float64)
    _expect_scatter(scatters[1], test_inputs, ref.TRUE_W * test_inputs + ref.TRUE_B, predicted, "test-set")
    yield "the test-set scatter shows the test data and the trained model's predictions"
    losses = np.asarray([float(np.asarray(v)) for v in ns["losses"]])
    panels = [
        axes for figure in figures for axes in figure.axes
        if axes.get_ylabel() == "Loss" and axes.get_xlabel() in ("w", "b")
    ]
    by_name = {axes.get_xlabel(): axes for axes in panels}
    if set(by_name) != {"w", "b"}:
        raise CheckFailure(
            "the loss-against-weights figure needs two panels with x labels 'w' and 'b' and y label "
            f"'Loss'; found panels for {sorted(by_name) or 'none'}."
        )
    for name, values in (("w", ns["list_w"]), ("b", ns["list_b"])):
        values = np.asarray(values, dtype=np.float64)
        for line in by_name[name].get_lines():
            x, y = (np.asarray(d, dtype=np.float64) for d in line.get_data())
            if x.shape != values.shape or not (np.allclose(x, values) and np.allclose(y, losses)):
                raise CheckFailure(
                    f"the '{name}' panel plots ({_fmt(x)}, {_fmt(y)}); expected the history of {name} "
                    f"against the losses ({_fmt(values)}, {_fmt(losses)})."
                )
    yield "the loss is plotted against the history of w and of b"


# ---------------------------------------------------------------- groups

NAMESPACE_CHECKS: dict[str, Callable[[Namespace], Iterator[str]]] = {
    "test_model_variables": check_model_variables,
    "test_model_output": check_model_output,
    "test_loss_values": check_loss_values,
    "test_loss_properties": check_loss_properties,
    "test_train_step": check_train_step,
    "test_train_state": check_train_state,
    "test_convergence_fit": check_convergence_fit,
    "test_convergence_history": check_convergence_history,
}
FIGURE_CHECKS: dict[str, Callable[[Namespace, Figures], Iterator[str]]] = {
    "test_plot_data": check_plot_data,
    "test_plot_history": check_plot_history,
    "test_plot_loss_weights": check_plot_loss_weights,
}
GRADE_IDS: tuple[str, ...] = (*NAMESPACE_CHECKS, *FIGURE_CHECKS)


def _run_check(check: Callable[..., Iterator[str]], *args: Any) -> Result:
    passed: list[str] = []
    try:
        passed.extend(check(*args))
    except StudentError as exc:
        return Result("not implemented" if exc.not_implemented else "error", False, str(exc))
    except CheckFailure as exc:
        return Result("failed", False, str(exc))
    return Result("passed", True, "\n".join(passed))


def run(grade_id: str, ns: Namespace, figures: Figures | None = None) -> Result:
    """Run the checks of one grade cell."""
    if grade_id in NAMESPACE_CHECKS:
        return _run_check(NAMESPACE_CHECKS[grade_id], ns)
    if grade_id in FIGURE_CHECKS:
        return _run_check(FIGURE_CHECKS[grade_id], ns, figures or [])
    raise KeyError(f"no checks for grade id {grade_id!r}; known: {', '.join(GRADE_IDS)}")
