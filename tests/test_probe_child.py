"""Probe children (coursekit/kernels/probe_child.py): real ones, forked by a real warm parent and confined."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from coursekit.course import cohort
from coursekit.course.directory import Course
from coursekit.kernels import probe_child
from coursekit.kernels.probe_child import ProbeChild, redact
from coursekit.kernels.warm_kernels import SOCKET_ENV, Zygote
from grader_tests import checks, stand_ins_source
from grader_tests import reference as ref

from .conftest import REPO

SETUP = "import tensorflow as tf\nimport numpy as np"
# Tells, through the one string the redaction keeps (an exception's type name), whether the child can see `what`.
REPORT = '''
def train(model, inputs, outputs, learning_rate):
    import gc, os, sys
    found = {{
        "train_stand_in": any(getattr(o, "__module__", "") == "coursekit_stand_ins" and getattr(o, "__name__", "")
                              == "train" for o in gc.get_objects()),
        "course": os.path.exists({course!r}),
        "secret": "COURSEKIT_TEST_SECRET" in os.environ,
    }}[{what!r}]
    raise type("Found" if found else "Absent", (Exception,), {{}})()
'''


def _kind(observation: dict) -> str:
    return observation["raised"]["message"].split(" raised ")[1].split(" ")[0]


@pytest.fixture(scope="module")
def warm_parent() -> Iterator[str]:
    env = {**Course(REPO).environment(), "COURSEKIT_TEST_SECRET": "hunter2"}
    with Zygote(env) as zygote:
        yield zygote.socket_path


@pytest.fixture
def child_of(warm_parent: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[object]:
    monkeypatch.setenv(SOCKET_ENV, warm_parent)
    children: list[ProbeChild] = []

    def start(parts: tuple[str, ...] = ("Model", "loss"), timeout: float = 60) -> ProbeChild:
        children.append(ProbeChild(str(tmp_path), stand_ins_source(parts), timeout))
        return children[-1]

    yield start
    for child in children:
        child.close()


@pytest.mark.slow
def test_a_child_replays_the_cells_and_observes_train_without_its_stand_in(child_of) -> None:
    child = child_of()
    assert child.send([SETUP, cohort.MODEL, cohort.LOSS, cohort.TRAIN], "test_train_step")
    observation = child.receive()
    assert checks.judge("test_train_step", observation).passed, observation
    assert child.send([], "test_train_state")
    assert checks.judge("test_train_state", child.receive()).passed
    # The same child, asked about train's own stand-in: it was never sent.
    assert child.send([REPORT.format(what="train_stand_in", course="")], "test_train_step")
    assert _kind(child.receive()) == "Absent"


def test_a_failing_cell_is_not_formatted_but_still_recorded_and_the_replay_goes_on(child_of) -> None:
    """A child discards every output, so it skips IPython's traceback formatting; the exception is still where
    a later cell of the student's would find it (sys.last_value), and the cells after it still run."""
    child = child_of()
    last = "def train(*a):\n  import sys\n  raise type('Last' + type(sys.last_value).__name__, (Exception,), {})()"
    assert child.send([SETUP, "{}['missing']", "def helper():\n  return 1", last], "test_train_step")
    assert _kind(child.receive()) == "LastKeyError"


@pytest.mark.slow
def test_the_run_child_holds_what_the_mix_needs(child_of) -> None:
    child = child_of(("train",))
    mix = "student/student/stand-in"
    assert child.send([SETUP, cohort.MODEL, cohort.LOSS, "def train(*a):\n  raise ValueError()"], "run", mix)
    history = checks.rerun_training(child.receive(), {"Model": "ok", "loss": "ok", "train": "wrong"})
    assert history.substituted == ("train",)
    assert abs(history.w[-1] - ref.SEED_LAB_TABLE[-1][0]) < ref.TABLE_WB_TOLERANCE


@pytest.mark.slow
@pytest.mark.parametrize(("what", "expected"), [("course", "Absent"), ("secret", "Absent")])
def test_a_child_is_confined_like_a_kernel(child_of, what: str, expected: str) -> None:
    child = child_of()
    assert child.send([SETUP, REPORT.format(what=what, course=str(REPO / "grader_tests" / "stand_ins.py"))],
                      "test_train_step")
    assert _kind(child.receive()) == expected


@pytest.mark.slow
def test_a_child_past_the_time_limit_is_killed(child_of) -> None:
    child = child_of(timeout=3)
    start = time.monotonic()
    assert child.send([SETUP, "def train(*a):\n  import time\n  time.sleep(600)"], "test_train_step")
    assert child.receive() == {"interrupted": True}
    assert time.monotonic() - start < 20
    assert not child.alive()
    assert checks.judge("test_train_step", {"interrupted": True}).message.startswith("the hidden tests ran out")


FLOOD = '''
import os, socket, stat
for fd in map(int, os.listdir("/proc/self/fd")):
    try:
        if stat.S_ISSOCK(os.fstat(fd).st_mode):
            os.write(fd, {payload!r})
    except OSError:
        pass
'''


@pytest.mark.slow
def test_an_oversized_or_unreadable_answer_earns_nothing(child_of) -> None:
    child = child_of()
    assert child.send([SETUP, FLOOD.format(payload=b"x" * (probe_child.MAX_ANSWER + 10) + b"\n")], "test_train_step")
    assert "larger than" in child.receive()["observer_error"]
    for payload in (b"{not json\n", b"[" * 200_000 + b"\n"):  # the second is nested past the parser's depth
        child = child_of()
        assert child.send([SETUP, FLOOD.format(payload=payload)], "test_train_step")
        assert not checks.judge("test_train_step", child.receive()).passed


def test_redaction_keeps_names_and_numbers_and_drops_free_text() -> None:
    leaked = "def loss(predicted_y, target_y):\n  return tf.reduce_mean(tf.square(predicted_y - target_y))"
    observation = {
        "raised": {"at": "step 0.1", "message": f"train(model, inputs, outputs, learning_rate=0.1) raised "
                   f"ValueError: {leaked}", "not_implemented": False},
        "steps": [{"lr": 0.1, "after": [1.5, "nan"], "returned": {"type": "Oops " + leaked, "error": leaked}}],
        "runs": {"student/stand-in/student": {"w": [1.0], "unreadable": leaked, leaked: 1}},
        "observer_error": leaked,
    }
    redacted = redact(observation)
    assert leaked not in repr(redacted) and "reduce_mean" not in repr(redacted)
    assert redacted["raised"]["message"].startswith("train(model, inputs, outputs, learning_rate=0.1) raised "
                                                    "ValueError (its message is not shown")
    assert redacted["steps"][0]["after"] == [1.5, "nan"] and redacted["steps"][0]["returned"]["type"] == "Oops"
    assert redacted["runs"]["student/stand-in/student"]["w"] == [1.0]
    stub = redact({"raised": {"message": "Model() raised NotImplementedError: " + leaked, "not_implemented": True}})
    assert stub["raised"]["message"].endswith("replace `raise NotImplementedError()` with your code.")
