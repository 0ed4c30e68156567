"""Judging outside the kernel: the grader, not the student's kernel, turns observations into points.

The hidden region of each test cell calls `grader_observe.observe(...)`, which records what the student's
objects do as one display_data output (MIME type `grader_observe.MIME`). Two autograde steps take it from
there, in the grader process:

- `ObservedExecute` (Execute's place) injects a fresh per-run nonce and the stand-in parts' source into each
  hidden region just before the kernel runs it, and puts the cells' source back afterwards, so the
  autograded notebook, the gradebook's checksums and ReplayExecution see the source nbgrader restored.
- `JudgeObservations` (right after execution) replaces every observed test cell's outputs with the judge's
  verdict: "Hidden tests passed: ..." on stdout, or an `error` output `CheckFailed: <message>`, which
  nbgrader scores 0. It reads the observation carrying this run's nonce and the cell's grade id among that
  cell's own outputs. A cell with none, with more than one, or whose outputs were cleared while it ran gets
  an error. Whatever student code printed or displayed in a test cell is dropped: it cannot earn points.
  docs/security-judging.md says what is still possible.
"""

from __future__ import annotations

import os
import re
import secrets
import time
from pathlib import Path
from typing import Any

from nbformat import NotebookNode
from nbgrader import utils
from nbgrader.preprocessors import NbGraderPreprocessor

from coursekit.kernels.probe_child import ProbeChild, ProbeChildError
from coursekit.kernels.runaway import RUNAWAY_ERRORS, GuardedExecute, message_size
from coursekit.steps.observation_limits import MAX_OBSERVATION_BYTES, bounded
from coursekit.steps.policy import integration_policy
from grader_observe import MIME, inputs
from grader_tests import checks, stand_ins_source

RESOURCE_KEY = "coursekit_judge"
OBSERVE_CALL = re.compile(r"""observe\(\s*(["'])(?P<grade_id>\w+)\1\s*,\s*globals\(\)\s*\)""")
TAMPERED = (
    "this cell holds more than one record of the hidden tests, or its output was cleared while it ran: "
    "something other than the hidden tests wrote to it, so it earns nothing."
)
NOT_RUN = (
    "the hidden tests did not run in this cell: the kernel stopped or your code kept them from running. "
    "Run your notebook from the top and make sure every cell finishes."
)


def one_sentence_a_line(message: str) -> str:
    """Feedback shows tracebacks in a box that does not wrap: the hint at the end must not scroll out of view."""
    return re.sub(r"(?<=[.?!]) (?=[A-Z`])", "\n", message)


def is_observed(cell: NotebookNode) -> bool:
    """A test cell whose (gradebook-restored) source asks the observer to record it."""
    return (
        cell.cell_type == "code" and utils.is_grade(cell) and not utils.is_solution(cell)
        and OBSERVE_CALL.search(cell.source) is not None
    )


def inject(source: str, nonce: str) -> str:
    """The hidden region's observe call, with this run's nonce as an argument: nothing else of the grader's."""
    return OBSERVE_CALL.sub(
        lambda m: f"observe({m.group(1)}{m.group('grade_id')}{m.group(1)}, globals(), nonce={nonce!r})", source
    )


def is_test_cell(cell: NotebookNode) -> bool:
    return cell.cell_type == "code" and utils.is_grade(cell) and not utils.is_solution(cell)


class ApartProbes:
    """The probe children of one notebook's run (coursekit/kernels/probe_child.py), and what they observed.

    One child, sent the stand-in Model and loss, observes train: it starts with the notebook and replays the
    student's cells while the kernel runs them (its latency hidden: measured, starting it after the first
    train cell made `coursekit grade` about 25 % slower); its answers are read once the kernel ran each train
    cell. It also runs the convergence run when train is judged
    right. When train is judged wrong, that run needs train's stand-in: a second child, which never observes
    train, runs it. Each answer may take as long as the kernel took for the cells replayed, plus one cell's
    time limit.
    """

    def __init__(self, nb: NotebookNode, cwd: str, timeout: float) -> None:
        self.nb, self.cwd, self.timeout = nb, cwd, timeout
        self.children: dict[str, ProbeChild | None] = {}
        self.replayed: dict[str, int] = {}
        self.asked: dict[int, str] = {}
        self.budgets: dict[int, float] = {}
        self.runs: dict[tuple[str, int], dict[str, Any]] = {}
        self.kernel_seconds: dict[int, float] = {}  # how long the kernel took for each cell

    def _cells(self, child: str, upto: int) -> tuple[list[str], float]:
        """The cells `child` has not replayed yet above `upto`, and how long the kernel took for them."""
        start = self.replayed.get(child, 0)
        self.replayed[child] = max(start, upto)
        indices = [index for index in range(start, upto) if self.nb.cells[index].cell_type == "code"
                   and not is_test_cell(self.nb.cells[index]) and self.nb.cells[index].source.strip()]
        return [self.nb.cells[index].source for index in indices], sum(self.kernel_seconds.get(i, 0.0)
                                                                        for i in indices)

    def _child(self, name: str, parts: tuple[str, ...]) -> ProbeChild | None:
        if name not in self.children:
            try:
                self.children[name] = ProbeChild(self.cwd, stand_ins_source(parts), self.timeout)
            except ProbeChildError:
                self.children[name] = None
        return self.children[name]

    def start(self) -> None:
        """Ask the train child for the first train cell's probe now: it replays while the kernel runs."""
        first = next((index for index, cell in enumerate(self.nb.cells) if is_observed(cell)
                      and cell.metadata.nbgrader["grade_id"] in checks.APART), None)
        if first is not None:
            self._ask("train", ("Model", "loss"), first, self.nb.cells[first].metadata.nbgrader["grade_id"])

    def _ask(self, name: str, parts: tuple[str, ...], index: int, probe: str, mix: str = "") -> None:
        child = self._child(name, parts)
        if child is None:
            return
        cells, seconds = self._cells(name, index)
        if child.send(cells, probe, mix):
            self.asked[index] = name
            self.budgets[index] = seconds + self.timeout

    def _answer(self, index: int) -> dict[str, Any]:
        child = self.children.get(self.asked.pop(index, ""))
        if child is None:
            return {"observer_error": "no process could run your code apart from the notebook"}
        return child.receive(self.budgets.pop(index, self.timeout))

    def train(self, index: int, grade_id: str) -> dict[str, Any]:
        if index not in self.asked:
            self._ask("train", ("Model", "loss"), index, grade_id)
        return self._answer(index)

    def discard(self, index: int) -> None:
        """Forget what was asked for a cell the kernel did not run cleanly: end that child rather than wait for
        its answer (it may be stuck where the kernel was); a later cell starts a fresh one."""
        name = self.asked.pop(index, None)
        child = self.children.pop(name, None) if name is not None else None
        if child is not None:
            child.close()
            self.replayed.pop(name, None)

    def run(self, index: int, mix: str, alone: bool = False) -> dict[str, Any]:
        """The convergence run `mix` on the cells above `index`; the same cells and mix are run once.

        `alone`: the mix runs a student part that failed its own checks ("whole notebook"), so it must not run
        in the train child, next to that part's stand-in: a child holding only the stand-ins the mix uses runs it.
        """
        train_right = mix.endswith("/student") and not alone
        substituted = tuple(part for part, who in zip(inputs.PARTS, mix.split("/"), strict=True) if who == "stand-in")
        name = "train" if train_right else ("own" if alone else "run")
        # The train child holds the Model and loss stand-ins already; the other holds only what the mix needs.
        parts = ("Model", "loss") if train_right else substituted
        replay = [i for i, cell in enumerate(self.nb.cells[:index]) if cell.cell_type == "code"
                  and not is_test_cell(cell) and cell.source.strip()]
        key = (mix, replay[-1] if replay else -1)
        if key not in self.runs:
            self._ask(name, parts, index, inputs.RUN, mix)
            self.runs[key] = self._answer(index)
        return self.runs[key]

    def close(self) -> None:
        for child in self.children.values():
            if child is not None:
                child.close()


class ObservedExecute(GuardedExecute):
    """nbgrader's Execute with a per-run nonce injected into hidden regions for the run only, and the parts
    that need the reference for the others observed apart, in probe children."""

    def preprocess(self, nb: NotebookNode, resources: dict[str, Any]):
        self._nonce = nonce = secrets.token_hex(16)
        self._originals: dict[int, str] = {index: cell.source for index, cell in enumerate(nb.cells)
                                           if is_observed(cell)}
        self._cleared: set[int] = set()
        self._bundles: dict[int, int] = {}
        self._apart: dict[int, dict[str, Any]] = {}
        self._train: dict[str, dict[str, Any]] = {}
        self._policy = integration_policy(self.config)
        cwd = resources.get("metadata", {}).get("path") or os.getcwd()
        self._probes = ApartProbes(nb, str(Path(cwd).resolve()), float(self.timeout or 120))
        resources[RESOURCE_KEY] = {"nonce": nonce}
        try:
            self._probes.start()
            nb, resources = super().preprocess(nb, resources)
        finally:
            self._probes.close()
            for index, source in self._originals.items():
                nb.cells[index].source = source
        resources[RESOURCE_KEY].update(cleared=sorted(self._cleared), apart=self._apart, train=self._train)
        return nb, resources

    def preprocess_cell(self, cell: NotebookNode, resources: Any, index: int):
        if index not in self._originals:
            started = time.monotonic()
            try:
                return super().preprocess_cell(cell, resources, index)
            finally:
                self._probes.kernel_seconds[index] = time.monotonic() - started
        grade_id = cell.metadata.nbgrader["grade_id"]
        cell.source = inject(self._originals[index], self._nonce)
        cell, resources = super().preprocess_cell(cell, resources, index)
        kernel = observations_of(cell, grade_id, self._nonce)
        clean = len(kernel) == 1 and index not in self._cleared
        if grade_id in checks.APART:
            # Observed apart only once the kernel ran the cell: a kernel that stopped before it still costs it.
            # A cell that ran but was tampered with earns nothing, yet train's status still comes from here.
            if self._stopped:
                self._probes.discard(index)
            else:
                self._apart[index] = self._train[grade_id] = self._probes.train(index, grade_id)
        elif clean and grade_id in inputs.RUN_GRADE_IDS:
            statuses = checks.part_statuses(kernel[0].get("parts"), self._train)
            mix = checks.mix_for(statuses, self._policy)
            if mix is not None:
                alone = bool(checks.run_beside_stand_ins(statuses, mix))
                self._apart[index] = self._probes.run(index, mix, alone)
        return cell, resources

    def _exempt(self, msg: dict[str, Any], cell_index: int) -> bool:
        """The first two observation bundles of an observed cell are judged and replaced, never stored: they do
        not count against the notebook's output budget. Two, so that a forged second one is still seen."""
        if "coursekit_exempt" in msg:
            return msg["coursekit_exempt"]
        content = msg.get("content", {})
        exempt = (
            cell_index in self._originals and msg.get("msg_type") == "display_data"
            and not content.get("transient") and isinstance(content.get("data"), dict) and MIME in content["data"]
            and self._bundles.get(cell_index, 0) < 2 and message_size(msg) <= MAX_OBSERVATION_BYTES
        )
        if exempt:
            self._bundles[cell_index] = self._bundles.get(cell_index, 0) + 1
        msg["coursekit_exempt"] = exempt
        return exempt

    def clear_output(self, outs: list[NotebookNode], msg: dict[str, Any], cell_index: int) -> None:
        # Clearing is how code running after the observer (an IPython post_run_cell hook, say) could replace
        # the real observation with a forged one: the judge gives a cleared test cell nothing.
        self._cleared.add(cell_index)
        super().clear_output(outs, msg, cell_index)


def _stream(text: str) -> NotebookNode:
    return NotebookNode(output_type="stream", name="stdout", text=text)


def _error(message: str) -> NotebookNode:
    return NotebookNode(
        output_type="error", ename="CheckFailed", evalue=message,
        traceback=[one_sentence_a_line(f"CheckFailed: {message}")],
    )


def observations_of(cell: NotebookNode, grade_id: str, nonce: str) -> list[dict[str, Any]]:
    """The observations in this cell's own outputs made in this run for this cell."""
    found = []
    for output in cell.get("outputs", []):
        if output.get("output_type") != "display_data":
            continue
        bundle = output.get("data", {}).get(MIME)
        if (
            isinstance(bundle, dict) and bundle.get("nonce") == nonce and bundle.get("grade_id") == grade_id
            and isinstance(bundle.get("observation"), dict)
        ):
            found.append(bounded(bundle["observation"]))  # validated before the judge builds anything from it
    return found


def verdict(grade_id: str, observations: list[dict[str, Any]], cleared: bool = False,
            apart: dict[str, Any] | None = None, train: dict[str, Any] | None = None,
            policy: str = checks.DEFAULT_POLICY) -> list[NotebookNode]:
    """The outputs a judged test cell ends with, under the instructor's grading `policy`."""
    if cleared or len(observations) > 1:
        return [_error(TAMPERED)]
    if not observations:
        return [_error(NOT_RUN)]
    result = checks.judge(grade_id, checks.compose(grade_id, observations[0], apart, train, policy))
    if not result.passed:
        return [_error(result.message)]
    lines = "\n".join(f"  ✓ {line}" for line in result.message.splitlines())
    return [_stream(f"Hidden tests passed:\n{lines}\n")]


# Where a judged test cell records its failures' stable ids (grader_tests/checks.py, HINTS), for the class report
# (coursekit/report/): cell.metadata["coursekit"]["hints"], [] when it passed. Always written over, so a student
# cannot plant one; SanitizeStudentContent keeps it on test cells only.
HINTS_KEY = "coursekit"
_STOPPED_HINTS = {"CellTimeoutError": "cell.timeout", "DeadKernelError": "kernel.died", "CellNotRun": "cell.not_run"}


def hint_ids(grade_id: str, observations: list[dict[str, Any]], cleared: bool = False,
             apart: dict[str, Any] | None = None, train: dict[str, Any] | None = None) -> list[str]:
    """The stable ids of what `verdict` reports for the same arguments: [] for a pass."""
    if cleared or len(observations) > 1:
        return ["cell.tampered"]
    if not observations:
        return ["cell.not_run"]
    result = checks.judge(grade_id, checks.compose(grade_id, observations[0], apart, train))
    return [] if result.passed else [result.hint]


class JudgeObservations(NbGraderPreprocessor):  # enabled by default, unlike nbconvert's base
    """Replace each observed test cell's outputs with the judge's verdict on its observation."""

    def preprocess(self, nb: NotebookNode, resources: dict[str, Any]):
        state = resources.get(RESOURCE_KEY) or {}
        if state.get("replayed"):
            return nb, resources  # a worker's grader process judged these outputs already
        nonce = state.get("nonce")
        if not nonce:
            raise RuntimeError(
                "JudgeObservations needs ObservedExecute (or ReplayExecution) before it in "
                "Autograde.autograde_preprocessors: see nbgrader_config.py."
            )
        cleared = set(state.get("cleared", ()))
        apart, train = state.get("apart", {}), state.get("train", {})
        policy = integration_policy(self.config)
        for index, cell in enumerate(nb.cells):
            if is_observed(cell):
                grade_id = cell.metadata.nbgrader["grade_id"]
                observations = observations_of(cell, grade_id, nonce)
                judged = verdict(grade_id, observations, index in cleared, apart.get(index), train, policy)
                # A cell that timed out, or that never ran after the kernel died, says so
                # (coursekit/kernels/runaway.py).
                stopped = [o for o in cell.get("outputs", []) if o.get("output_type") == "error"
                           and o.get("ename") in RUNAWAY_ERRORS]
                halted = bool(stopped) and not observations and index not in cleared
                cell.outputs = stopped[-1:] if halted else judged
                hints = [_STOPPED_HINTS[stopped[-1].ename]] if halted else \
                    hint_ids(grade_id, observations, index in cleared, apart.get(index), train)
                cell.metadata[HINTS_KEY] = {"hints": hints}
        return nb, resources
