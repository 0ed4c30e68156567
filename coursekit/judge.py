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

import contextlib
import re
import secrets
from typing import Any

from nbformat import NotebookNode
from nbgrader import utils
from nbgrader.preprocessors import NbGraderPreprocessor

from grader_observe import MIME, inputs, part_digest
from grader_tests import checks, stand_ins_source

from .observation_limits import MAX_OBSERVATION_BYTES, bounded
from .runaway import RUNAWAY_ERRORS, GuardedExecute, message_size

RESOURCE_KEY = "coursekit_judge"
OBSERVE_CALL = re.compile(r"""observe\(\s*(["'])(?P<grade_id>\w+)\1\s*,\s*globals\(\)\s*\)""")
TAMPERED = (
    "this cell holds more than one record of the hidden tests, or its output was cleared while it ran: "
    "something other than the hidden tests wrote to it, so it earns nothing."
)
PART_OF = {grade_id: part for part, grade_ids in inputs.PART_GRADE_IDS.items() for grade_id in grade_ids}
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


def inject(source: str, nonce: str, stand_ins: str, known: dict[str, str] | None = None) -> str:
    """The hidden region's observe call, with this run's nonce and the stand-in parts' source as arguments.

    `known`: the judge's verdicts so far on part observations, by digest; the observer then computes only
    the training run the judge will pick (grader_observe.kernel._wanted).
    """
    extra = f", known={known!r}" if known else ""
    return OBSERVE_CALL.sub(
        lambda m: f"observe({m.group(1)}{m.group('grade_id')}{m.group(1)}, globals(), "
        f"nonce={nonce!r}, stand_ins={stand_ins!r}{extra})",
        source,
    )


class ObservedExecute(GuardedExecute):
    """nbgrader's Execute, with a per-run nonce and the stand-ins injected into hidden regions for the run only."""

    def preprocess(self, nb: NotebookNode, resources: dict[str, Any]):
        self._nonce = nonce = secrets.token_hex(16)
        self._stand_ins = stand_ins_source()
        self._originals: dict[int, str] = {index: cell.source for index, cell in enumerate(nb.cells)
                                           if is_observed(cell)}
        self._parts_seen: dict[str, dict[str, Any]] = {part: {} for part in inputs.PARTS}
        self._cleared: set[int] = set()
        self._bundles: dict[int, int] = {}
        resources[RESOURCE_KEY] = {"nonce": nonce}
        try:
            nb, resources = super().preprocess(nb, resources)
        finally:
            for index, source in self._originals.items():
                nb.cells[index].source = source
        resources[RESOURCE_KEY]["cleared"] = sorted(self._cleared)
        return nb, resources

    def preprocess_cell(self, cell: NotebookNode, resources: Any, index: int):
        if index not in self._originals:
            return super().preprocess_cell(cell, resources, index)
        grade_id = cell.metadata.nbgrader["grade_id"]
        known = self._known() if grade_id in inputs.RUN_GRADE_IDS else None
        cell.source = inject(self._originals[index], self._nonce, self._stand_ins, known)
        cell, resources = super().preprocess_cell(cell, resources, index)
        part = PART_OF.get(grade_id)
        observed = observations_of(cell, grade_id, self._nonce)
        if part is not None and len(observed) == 1 and index not in self._cleared:
            self._parts_seen[part][grade_id] = observed[0]
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

    def _known(self) -> dict[str, str]:
        """The verdict on each part whose cells all ran, by the digest of its observations (see `inject`)."""
        known = {}
        for part, grade_ids in inputs.PART_GRADE_IDS.items():
            seen = self._parts_seen[part]
            if all(grade_id in seen for grade_id in grade_ids):
                observed = {grade_id: seen[grade_id] for grade_id in grade_ids}
                with contextlib.suppress(Exception):  # an observation JSON cannot hold: no shortcut for it
                    known[part_digest(observed)] = checks.part_status({"parts": {part: observed}}, part)
        return known

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


def verdict(grade_id: str, observations: list[dict[str, Any]], cleared: bool = False) -> list[NotebookNode]:
    """The outputs a judged test cell ends with."""
    if cleared or len(observations) > 1:
        return [_error(TAMPERED)]
    if not observations:
        return [_error(NOT_RUN)]
    result = checks.judge(grade_id, observations[0])
    if not result.passed:
        return [_error(result.message)]
    lines = "\n".join(f"  ✓ {line}" for line in result.message.splitlines())
    return [_stream(f"Hidden tests passed:\n{lines}\n")]


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
        for index, cell in enumerate(nb.cells):
            if is_observed(cell):
                grade_id = cell.metadata.nbgrader["grade_id"]
                observations = observations_of(cell, grade_id, nonce)
                # A cell that timed out, or that never ran after the kernel died, says so (coursekit/runaway.py).
                stopped = [o for o in cell.get("outputs", []) if o.get("output_type") == "error"
                           and o.get("ename") in RUNAWAY_ERRORS]
                if stopped and not observations and index not in cleared:
                    cell.outputs = stopped[-1:]
                else:
                    cell.outputs = verdict(grade_id, observations, index in cleared)
        return nb, resources
