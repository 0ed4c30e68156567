"""The observer: calls the student's objects on each check's inputs and records what came back, as plain data.

No check and no reference lives here: the judge (grader_tests.checks, run by the grader process) compares.
In the student's kernel (`observe`, `collect`) only the probes that need no reference run: Model, loss, the
notebook's recorded history and its figures. The probes that isolate a part with the reference for the
others (train on a stand-in Model and loss; training runs that mix student parts and stand-ins) run in a
probe child (`collect_apart`, coursekit/kernels/probe_child.py): a separate process that replays the student's
cells and is sent the stand-ins for the other parts only. The student's kernel never holds a stand-in.
Observation never raises into the student's kernel: whatever student code does is recorded as data.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import numpy as np
import tensorflow as tf

from . import figures, inputs
from .isolation import StudentError, call, quiet, rebind, safe_str

# Taken when this module is imported, before any student code (in the warm kernels' Zygote, or at a cold
# kernel's start: nbgrader_config.py), so a student who replaces these later does not change what the observer
# sees (docs/security-judging.md).
_isinstance = isinstance
_hasattr = hasattr
_float_of = float
_asarray = np.asarray
_array_equal = np.array_equal
_isfinite = math.isfinite
_gradient = tf.GradientTape.gradient
_Variable = tf.Variable
_Tensor = tf.Tensor

MIME = "application/vnd.coursekit.observation+json"
MAX_VALUES = 20_000  # per array: enough for the lab's 1000-point scatters, bounded for anything bigger
MAX_FIGURES = 40
MAX_ARTISTS = 8

Namespace = Mapping[str, Any]
Observation = dict[str, Any]


class _Stop(Exception):
    """Student code raised: the probe ends here, as the check would have."""


# ---------------------------------------------------------------- plain data


def _float(x: float) -> float | str:
    # JSON has no NaN or infinity; float("nan") and float("-inf") read these strings back.
    return x if _isfinite(x) else repr(x)


def number(value: Any) -> dict[str, Any]:
    """An array as shape and values, or why it is not numeric (the value's type and the conversion's error)."""
    try:
        with quiet():
            array = _asarray(value, dtype=np.float64)
            # The first values only: ravel() would copy a view claiming 10^12 values (as_strided, broadcast_to).
            flat = array.flat[:MAX_VALUES]
    except KeyboardInterrupt:
        raise
    except BaseException as exc:
        return {"type": type(value).__name__, "error": safe_str(exc)}
    return {"shape": list(array.shape), "size": int(array.size), "data": [_float(x) for x in flat.tolist()]}


def _values(model: Any) -> list[float | str] | None:
    try:
        with quiet():
            return [_float(_float_of(model.w.numpy())), _float(_float_of(model.b.numpy()))]
    except KeyboardInterrupt:
        raise
    except BaseException:
        return None


def _floats(values: Any) -> list[float | str] | None:
    try:
        with quiet():
            return [_float(_float_of(_asarray(v))) for v in values]
    except KeyboardInterrupt:
        raise
    except BaseException:
        return None


def _attempt(obs: Observation, at: str, description: str, fn: Callable[..., Any], *args: Any) -> Any:
    try:
        return call(description, fn, *args)
    except StudentError as exc:
        obs["raised"] = {"at": at, "message": str(exc), "not_implemented": exc.not_implemented}
        raise _Stop from None


def _lookup(obs: Observation, ns: Namespace, name: str) -> Any:
    if name not in ns:
        obs["undefined"] = name
        raise _Stop
    return ns[name]


def _quietly(obs: Observation, at: str, fn: Callable[[], Any]) -> Any:
    """Touch student objects (attributes, isinstance through __class__) where the check did so unguarded."""
    try:
        with quiet():
            return fn()
    except KeyboardInterrupt:
        raise
    except BaseException as exc:
        obs["raised"] = {"at": at, "message": f"{type(exc).__name__}: {safe_str(exc)}", "not_implemented": False}
        raise _Stop from None


# ---------------------------------------------------------------- model


def _describe_variable(var: Any) -> dict[str, Any]:
    described: dict[str, Any] = {"type": type(var).__name__, "is_variable": _isinstance(var, _Variable)}
    if described["is_variable"]:
        described.update(dtype=var.dtype.name, trainable=bool(var.trainable), value=number(var.numpy()))
    return described


def _missing(model: Any) -> list[str]:
    return [name for name in ("w", "b") if not _hasattr(model, name)]


def _student_model(obs: Observation, ns: Namespace, at: str) -> tuple[Any, Any, Any, Any]:
    """The student's Model, one instance built as `at`, and its w and b; the probe stops when w or b is missing."""
    model_class = _lookup(obs, ns, "Model")
    model = _attempt(obs, at, "Model()", model_class)
    obs["missing"] = _quietly(obs, at, lambda: _missing(model))
    if obs["missing"]:
        raise _Stop
    return model_class, model, model.w, model.b


def probe_model_variables(ns: Namespace, obs: Observation) -> None:
    model_class, _, w, b = _student_model(obs, ns, "first")
    obs["variables"] = _quietly(obs, "first", lambda: {"w": _describe_variable(w), "b": _describe_variable(b)})
    other = _attempt(obs, "second", "Model()", model_class)
    obs["second_missing"] = _quietly(obs, "second", lambda: _missing(other))
    if not obs["second_missing"]:
        obs["shares_variables"] = _quietly(obs, "second", lambda: other.w is w or other.b is b)


def probe_model_output(ns: Namespace, obs: Observation) -> None:
    _, model, w, b = _student_model(obs, ns, "model")
    obs["types"] = {"w": type(w).__name__, "b": type(b).__name__}
    obs["is_variable"] = {"w": _isinstance(w, _Variable), "b": _isinstance(b, _Variable)}
    if not (obs["is_variable"]["w"] and obs["is_variable"]["b"]):
        return

    def assign(values: tuple[float, float]) -> Callable[[], Any]:
        return lambda: (w.assign(tf.cast(values[0], w.dtype)), b.assign(tf.cast(values[1], b.dtype)))

    _attempt(obs, "set", "setting w=1.5 and b=-0.5", assign(inputs.MODEL_SET))
    obs["scalar"] = number(_attempt(obs, "scalar", "model(2.0)", model, inputs.MODEL_SCALAR_X))
    x = tf.constant(inputs.MODEL_X)
    obs["vector"] = number(_attempt(obs, "vector", "model(x) for a vector x", model, x))
    _attempt(obs, "reset", "setting w=3 and b=-2", assign(inputs.MODEL_RESET))
    obs["after_reset"] = number(_attempt(obs, "after_reset", "model(x) after changing w and b", model, x))
    with tf.GradientTape() as tape:
        out = _attempt(obs, "taped", "model(x) under a GradientTape", model, x)
        total = tf.reduce_sum(out) if _isinstance(out, (_Tensor, _Variable)) else None
    try:
        grads = _gradient(tape, total, [w, b]) if total is not None else [None, None]
    except Exception:
        grads = [None, None]
    obs["gradient_flows"] = grads[0] is not None and grads[1] is not None


# ---------------------------------------------------------------- loss


def probe_loss_values(ns: Namespace, obs: Observation) -> None:
    loss_fn = _lookup(obs, ns, "loss")
    predicted, target = inputs.LOSS_KNOWN
    description = "loss(predicted_y, target_y)"
    obs["known"] = number(_attempt(obs, "known", description, loss_fn, tf.constant(predicted), tf.constant(target)))
    obs["random"] = []
    for size, predicted, target in inputs.loss_random():
        out = _attempt(obs, f"random{size}", description, loss_fn, tf.constant(predicted), tf.constant(target))
        obs["random"].append(number(out))


def probe_loss_properties(ns: Namespace, obs: Observation) -> None:
    loss_fn = _lookup(obs, ns, "loss")
    predicted, target = inputs.LOSS_PROPERTIES
    out = _attempt(obs, "scalar", "loss(predicted_y, target_y)", loss_fn, tf.constant(predicted), tf.constant(target))
    obs["shape"] = _quietly(obs, "scalar", lambda: list(np.shape(out)))
    variable = tf.Variable(predicted)
    with tf.GradientTape() as tape:
        out = _attempt(obs, "taped", "loss(predicted_y, target_y) under a GradientTape", loss_fn, variable,
                       tf.constant(target))
    try:
        grad = _gradient(tape, out, variable)
    except Exception:
        grad = None
    obs["gradient_flows"] = grad is not None


# ---------------------------------------------------------------- train


def _isolated_train(ns: Namespace, obs: Observation, stand_ins: Any) -> Any:
    train = _lookup(obs, ns, "train")
    if not stand_ins or not {"Model", "loss"} <= set(stand_ins):
        obs["no_stand_ins"] = True
        raise _Stop
    return _quietly(obs, "rebind", lambda: rebind(train, loss=stand_ins["loss"], Model=stand_ins["Model"]))


def _start_model(stand_ins: Any, w: Any = inputs.INITIAL_W, b: Any = inputs.INITIAL_B) -> Any:
    model = stand_ins["Model"]()
    model.w.assign(_float_of(w))
    model.b.assign(_float_of(b))
    return model


def _train_call(obs: Observation, at: str, train: Any, model: Any, lr: float) -> Any:
    return _attempt(
        obs, at, f"train(model, inputs, outputs, learning_rate={lr})",
        train, model, tf.constant(inputs.TRAIN_X), tf.constant(inputs.TRAIN_Y), lr,
    )


def probe_train_step(ns: Namespace, obs: Observation, stand_ins: Any) -> None:
    train = _isolated_train(ns, obs, stand_ins)
    obs["steps"] = []
    for lr in inputs.TRAIN_RATES:
        model = _start_model(stand_ins)
        returned = _train_call(obs, f"step {lr}", train, model, lr)
        obs["steps"].append({"lr": lr, "after": _values(model), "returned": number(returned)})


def probe_train_state(ns: Namespace, obs: Observation, stand_ins: Any) -> None:
    train = _isolated_train(ns, obs, stand_ins)
    model = _start_model(stand_ins)
    w_before, b_before = model.w, model.b
    notebook_state = _values(ns.get("model"))
    _train_call(obs, "first", train, model, 0.1)
    obs["same_objects"] = _quietly(obs, "first", lambda: model.w is w_before and model.b is b_before)
    obs["still_variables"] = _quietly(
        obs, "first", lambda: _isinstance(model.w, _Variable) and _isinstance(model.b, _Variable)
    )
    after = _values(ns.get("model"))
    obs["notebook_model_changed"] = not (
        notebook_state is None or after is None or _array_equal(
            _asarray(notebook_state, dtype=np.float64), _asarray(after, dtype=np.float64), equal_nan=True
        )
    )
    if not (obs["same_objects"] and obs["still_variables"]) or obs["notebook_model_changed"]:
        return
    obs["after_one"] = _values(model)
    if obs["after_one"] is None:
        return
    obs["twice"] = number(_train_call(obs, "second", train, model, 0.1))
    fresh = _start_model(stand_ins, *obs["after_one"])
    obs["once"] = number(_train_call(obs, "fresh", train, fresh, 0.1))
    obs["got"], obs["expected"] = _values(model), _values(fresh)


# ---------------------------------------------------------------- convergence, plots

# The one probe that needs the reference for another part, besides train's: a training run of the notebook's
# schedule with the mix of student parts and stand-ins the judge chose (from each part's own verdict).
RUN = inputs.RUN
_RUN_MEMO: dict[tuple[int, ...], tuple[tuple[Any, ...], dict[str, Any]]] = {}
_LAB_DATA: list[tuple[Any, Any]] = []


def _lab_data() -> tuple[Any, Any]:
    # The data cell is locked and restored by nbgrader, so the lab's own draw is the notebook's. Drawn once:
    # each draw reseeds TensorFlow's global generator.
    if not _LAB_DATA:
        tf.keras.utils.set_random_seed(inputs.SEED)
        xs = tf.random.normal(shape=[inputs.NUM_EXAMPLES])
        _LAB_DATA.append((xs, inputs.TRUE_W * xs + inputs.TRUE_B))
    return _LAB_DATA[0]


def _run(ns: Namespace, choice: tuple[str, ...], stand_ins: Mapping[str, Any]) -> dict[str, Any]:
    chosen = zip(inputs.PARTS, choice, strict=True)
    run: dict[str, Any] = {"w": [], "b": [], "loss": []}
    try:
        parts = {}
        for part, who in chosen:
            parts[part] = _lookup(run, ns, part) if who == "student" else stand_ins[part]
        train_fn = _quietly(run, "rebind", lambda: rebind(parts["train"], loss=parts["loss"], Model=parts["Model"]))
        xs, ys = _lab_data()
        model = _attempt(run, "model", "Model()", parts["Model"])
        for epoch in range(inputs.EPOCHS):
            values = _values(model)
            if values is None:
                run["unreadable"] = epoch
                break
            run["w"].append(values[0])
            run["b"].append(values[1])
            current = _attempt(run, f"epoch {epoch}", f"train(...) at epoch {epoch}", train_fn, model, xs, ys,
                               inputs.LEARNING_RATE)
            run["loss"].append(number(current))
    except _Stop:
        pass
    return run


def convergence_run(ns: Namespace, stand_ins: Mapping[str, Any], mix: str) -> dict[str, dict[str, Any]]:
    """The notebook's schedule with `mix` ("student/stand-in/student": Model, loss, train), as {mix: run}.

    Computed once for the same objects: both convergence cells ask for the same run.
    """
    objects = tuple(ns.get(part) for part in inputs.PARTS)
    memo = _RUN_MEMO.get(tuple(map(id, objects)))
    runs = memo[1] if memo is not None and all(a is b for a, b in zip(memo[0], objects, strict=True)) else {}
    if mix not in runs:
        runs[mix] = _run(ns, tuple(mix.split("/")), stand_ins)
    _RUN_MEMO[tuple(map(id, objects))] = (objects, runs)
    return {mix: runs[mix]}


def _legend(axes: Any) -> list[str]:
    legend = axes.get_legend()
    return [text.get_text() for text in legend.get_texts()] if legend else []


def describe_figures(recorded: list[Any]) -> list[list[dict[str, Any]]]:
    described = []
    for figure in recorded[:MAX_FIGURES]:
        try:
            described.append([
                {
                    "legend": _legend(axes),
                    "xlabel": axes.get_xlabel(),
                    "ylabel": axes.get_ylabel(),
                    "collections": len(axes.collections),
                    "offsets": [number(c.get_offsets()) for c in axes.collections[:2]],
                    "lines": [[number(d) for d in line.get_data()] for line in axes.get_lines()[:MAX_ARTISTS]],
                }
                for axes in figure.axes[:MAX_ARTISTS]
            ])
        except Exception as exc:
            described.append([{"error": safe_str(exc)}])
    return described


def _names(ns: Namespace, names: tuple[str, ...]) -> dict[str, Any]:
    return {name: number(ns[name]) if name in ns else None for name in names}


def probe_apart(ns: Namespace, obs: Observation) -> None:
    """In the student's kernel, a cell whose part is observed apart, in a probe child (kernels/probe_child.py)."""


# Model and loss need no reference to be observed: convergence and plot cells observe them again where the
# kernel stands (the judge takes their status from there; train's comes from its own cells, observed apart).
# Later cells ask about the same objects: answered from memory, keyed by identity and holding the objects
# themselves so an id cannot be reused; a part redefined in a later cell is a new key.
_PART_MEMO: dict[str, tuple[Any, dict[str, Observation]]] = {}
KERNEL_PARTS = ("Model", "loss")


def part_observations(ns: Namespace, parts: tuple[str, ...] = KERNEL_PARTS) -> dict[str, dict[str, Observation]]:
    observed = {}
    for part in parts:
        obj = ns.get(part)
        memo = _PART_MEMO.get(part)
        if obj is not None and memo is not None and memo[0] is obj:
            observed[part] = memo[1]
            continue
        observed[part] = {grade_id: _observed_part(probe, ns) for grade_id, probe in _KERNEL_PART_PROBES[part]}
        if obj is not None:
            _PART_MEMO[part] = (obj, observed[part])
    return observed


def _observed_part(probe: Callable[[Namespace, Observation], None], ns: Namespace) -> Observation:
    obs: Observation = {}
    with contextlib.suppress(_Stop):
        probe(ns, obs)
    return obs


def probe_recorded(ns: Namespace, obs: Observation) -> None:
    obs["parts"] = part_observations(ns)
    obs["recorded"] = {name: _floats(ns.get(name)) for name in ("list_w", "list_b", "losses")}


def probe_plot_data(ns: Namespace, obs: Observation, recorded: list[Any]) -> None:
    # The figure shows Model only; loss is observed too because the grading policy asks whether any part is right.
    obs["parts"] = part_observations(ns)
    obs["figures"] = describe_figures(recorded)
    _lab_data()  # draws the lab's data at the same point of the notebook as before judging moved out


def probe_plot_history(ns: Namespace, obs: Observation, recorded: list[Any]) -> None:
    obs["parts"] = part_observations(ns)
    obs["figures"] = describe_figures(recorded)
    obs["names"] = _names(ns, ("list_w", "list_b"))


def probe_plot_loss_weights(ns: Namespace, obs: Observation, recorded: list[Any]) -> None:
    obs["parts"] = part_observations(ns)
    obs["figures"] = describe_figures(recorded)
    obs["names"] = _names(ns, ("list_w", "list_b", "test_inputs", "predicted_test_outputs"))
    obs["losses"] = _floats(ns["losses"]) if "losses" in ns else None


_KERNEL_PART_PROBES: dict[str, tuple[tuple[str, Callable[[Namespace, Observation], None]], ...]] = {
    "Model": (("test_model_variables", probe_model_variables), ("test_model_output", probe_model_output)),
    "loss": (("test_loss_values", probe_loss_values), ("test_loss_properties", probe_loss_properties)),
}
# What the student's kernel observes: nothing here needs the reference of any part.
NAMESPACE_PROBES: dict[str, Callable[[Namespace, Observation], None]] = {
    "test_model_variables": probe_model_variables,
    "test_model_output": probe_model_output,
    "test_loss_values": probe_loss_values,
    "test_loss_properties": probe_loss_properties,
    **{grade_id: probe_apart for grade_id in inputs.PART_GRADE_IDS["train"]},
    **{grade_id: probe_recorded for grade_id in inputs.RUN_GRADE_IDS},
}
FIGURE_PROBES: dict[str, Callable[[Namespace, Observation, list[Any]], None]] = {
    "test_plot_data": probe_plot_data,
    "test_plot_history": probe_plot_history,
    "test_plot_loss_weights": probe_plot_loss_weights,
}
GRADE_IDS = (*NAMESPACE_PROBES, *FIGURE_PROBES)
# What a probe child observes, with the stand-ins for the other parts (never the part it observes).
APART_PROBES: dict[str, Callable[[Namespace, Observation, Mapping[str, Any]], None]] = {
    "test_train_step": probe_train_step,
    "test_train_state": probe_train_state,
}


def load_stand_ins(source: str) -> dict[str, Any]:
    """The stand-in parts defined by `source` (the grader's text, sent to a probe child), by name."""
    env: dict[str, Any] = {"__name__": "coursekit_stand_ins"}
    if source:
        exec(compile(source, "<stand-ins>", "exec"), env)
    return {part: env[part] for part in inputs.PARTS if part in env}


def _observed(probe: Callable[[], None]) -> Observation:
    obs: Observation = {}
    try:
        with contextlib.suppress(_Stop):
            probe()
    except KeyboardInterrupt:
        obs["interrupted"] = True  # the cell's time ran out: what was observed so far is judged
    except BaseException as exc:
        obs["observer_error"] = f"{type(exc).__name__}: {safe_str(exc)}"
    return obs


def collect(grade_id: str, ns: Namespace, recorded: list[Any] | None = None) -> Observation:
    """Observe one grade cell in the student's kernel: plain data only, whatever the student's code does."""
    obs: Observation = {}

    def probe() -> None:
        if grade_id in NAMESPACE_PROBES:
            NAMESPACE_PROBES[grade_id](ns, obs)
        elif grade_id in FIGURE_PROBES:
            FIGURE_PROBES[grade_id](ns, obs, figures.RECORDED if recorded is None else recorded)
        else:
            obs["unknown_grade_id"] = grade_id

    problems = _observed(probe)
    return {**obs, **problems}


def collect_apart(probe: str, ns: Namespace, stand_ins: Mapping[str, Any], mix: str = "") -> Observation:
    """Observe `probe` (a grade id of APART_PROBES, or RUN with `mix`) where only the given stand-ins live."""
    obs: Observation = {}

    def run() -> None:
        if probe == RUN:
            obs["runs"] = convergence_run(ns, stand_ins, mix)
        elif probe in APART_PROBES:
            APART_PROBES[probe](ns, obs, stand_ins)
        else:
            obs["unknown_grade_id"] = probe

    problems = _observed(run)
    return {**obs, **problems}


# ---------------------------------------------------------------- in the kernel


class _NoDisplay:
    """Stands in for IPython's display publisher while student code runs: what it displays is dropped."""

    def publish(self, *args: Any, **kwargs: Any) -> None:
        return None

    def clear_output(self, *args: Any, **kwargs: Any) -> None:
        return None


@contextlib.contextmanager
def _no_display(shell: Any) -> Iterator[Any]:
    """Yield the display publisher as it was on entry; student code called meanwhile cannot display anything."""
    if shell is None:
        yield None
        return
    real = shell.display_pub
    shell.display_pub = _NoDisplay()
    try:
        yield real
    finally:
        shell.display_pub = real


def _visible_tests_superseded() -> None:
    """Stands in for a cell's visible tests: the judge decides this cell from the observation alone."""


def observe(grade_id: str, namespace: Namespace, *, nonce: str = "") -> Callable[[], None]:
    """The hidden region's call: observe, then emit one display_data the grader's judge reads."""
    __tracebackhide__ = True
    try:
        from IPython import get_ipython

        shell = get_ipython()
    except Exception:
        shell = None
    observation: Observation
    with _no_display(shell) as publisher:
        try:
            figures.install()
            observation = collect(grade_id, namespace)
        except BaseException as exc:
            observation = {"observer_error": f"{type(exc).__name__}: {safe_str(exc)}"}
    bundle = {"grade_id": grade_id, "nonce": nonce, "observation": observation}
    data = {MIME: bundle, "text/plain": f"[observation of {grade_id}: the grader judges it]"}
    with contextlib.suppress(Exception):
        if publisher is not None:
            publisher.publish(data=data, metadata={})
        else:
            from IPython.display import publish_display_data

            publish_display_data(data)
    return _visible_tests_superseded
