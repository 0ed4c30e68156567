"""Grade a cohort: workers execute chunks, one writer records every grade in the real gradebook.

1. `workers.build_bundle` makes what a worker needs, once: source/, the config and a scratch gradebook.
2. A runner (coursekit/engine/runners.py: threads here, or a Dask cluster) executes chunks of submissions with
   `workers.execute_chunk`; a few chunks are in flight at a time, so memory stays flat for any cohort.
3. As chunks come back, their notebooks go into a replay folder and the writer (coursekit/engine/autograder.py:
   nbgrader's Autograde with `ReplayExecution`) records them in batches. So a grade is kept as soon as
   its batch is recorded, and Ctrl-C loses only what was still executing: a rerun grades the rest.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import queue
import shutil
import signal
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from concurrent.futures import CancelledError
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TextIO

from coursekit import ASSIGNMENT
from coursekit.course.directory import Course, CourseError
from coursekit.engine import completion, intake
from coursekit.engine.autograder import AutograderProcess
from coursekit.engine.routes import REPLAY_ENV, sha256
from coursekit.engine.runners import ChunkFuture, DaskRunner, LocalRunner, runner_for
from coursekit.engine.workers import NOTEBOOK, WORKER_CRASH, ChunkResult, ChunkStopped, build_bundle, pending

RECORDED = "graded"
# The last run's record, in the course folder (git-ignored): when, how long, who was graded, graded blank or
# failed and why. Read by `coursekit report` (coursekit/report/); nothing else depends on it.
RUN_RECORD = "grading-run.json"
WRITER_ERROR = "nbgrader error (recording)"
REFUSED_ID = "refused id"


class GradingInterrupted(CourseError):
    """Ctrl-C: what was recorded is kept; the message says how to grade the rest."""


@dataclass
class Summary:
    total: int
    graded: list[str] = field(default_factory=list)
    failed: dict[str, tuple[str, str]] = field(default_factory=dict)  # student: (why, detail)
    # Graded, as the blank release, because intake could not take their notebook: student: reason.
    blank: dict[str, str] = field(default_factory=dict)
    # Graded, with something dropped or repaired at intake (a timestamp that is not a date ...): student: notes.
    notes: dict[str, list[str]] = field(default_factory=dict)
    execution_seconds: dict[str, float] = field(default_factory=dict)
    elapsed: float = 0.0
    interrupted: bool = False
    # (seconds into the run, graded so far) when the first batch was recorded: start-up (imports, the warm
    # parent, the bundle) is paid once, so the rate after it is what a bigger cohort gets.
    first_recorded: tuple[float, int] | None = None
    started: float = field(default_factory=time.monotonic)
    started_at: datetime = field(default_factory=lambda: datetime.now(UTC))

    def steady_rate(self) -> float | None:
        """Seconds per submission after the first recorded batch, or None when there is too little to tell."""
        if self.first_recorded is None or len(self.graded) - self.first_recorded[1] < 2:
            return None
        return (self.elapsed - self.first_recorded[0]) / (len(self.graded) - self.first_recorded[1])

    @property
    def done(self) -> int:
        return len(self.graded) + len(self.failed)

    def table(self) -> str:
        graded, n = len(self.graded), max(self.done, 1)
        lines = [
            f"{'':22}{'students':>9}",
            f"{'graded':22}{graded:>9}",
            f"{'failed':22}{len(self.failed):>9}",
        ]
        if self.total > self.done:
            lines.append(f"{'not graded (stopped)':22}{self.total - self.done:>9}")
        steady = self.steady_rate()
        lines.append(f"time: {self.elapsed:.0f} s, {self.elapsed / n:.2f} s per submission"
                     + (f" (first grade after {self.first_recorded[0]:.0f} s, then {steady:.2f} s per submission)"
                        if self.first_recorded and steady else ""))
        if self.execution_seconds:
            lines.append(f"executing: {sum(self.execution_seconds.values()) / len(self.execution_seconds):.2f} s "
                         "per submission on a worker")
        # Ids and reasons come from students (folder names, notebook content): printed escaped, one line each.
        blank = {s: r for s, r in self.blank.items() if s in self.graded}
        if blank:
            width = max(len(intake.shown(s)) for s in blank)
            lines += ["", f"{'graded as blank':{width}}  why (0 points; the reason is in their feedback)"]
            for student, reason in sorted(blank.items()):
                lines.append(f"{intake.shown(student):{width}}  {intake.shown(reason)}")
        if self.notes:
            width = max(len(intake.shown(s)) for s in self.notes)
            lines += ["", f"{'graded, noted':{width}}  what intake dropped or repaired"]
            for student, notes in sorted(self.notes.items()):
                lines.append(f"{intake.shown(student):{width}}  {intake.shown('; '.join(notes))}")
        if self.failed:
            width = max(len(intake.shown(s)) for s in self.failed)
            lines += ["", f"{'failed':{width}}  {'why':26}  detail"]
            for student, (why, detail) in sorted(self.failed.items()):
                lines.append(f"{intake.shown(student):{width}}  {why:26}  {intake.shown(detail)}")
        return "\n".join(lines)


# ---------------------------------------------------------------- the writer


class Writer(AutograderProcess):
    """The one gradebook writer: coursekit.engine.autograder in the real course, replaying the workers' outputs."""

    def __init__(self, course: Course, replay: Path, log: Path) -> None:
        replay.mkdir(parents=True, exist_ok=True)
        # It grades what intake staged, never submitted/ (extra files, links): coursekit/engine/intake.py.
        super().__init__(course.root, {**course.environment(), REPLAY_ENV: str(replay)}, log,
                         (intake.NBGRADER_OPTION,))

    def record(self, students: dict[str, dict[str, str]]) -> None:
        """{student: {"sha256": of the submitted bytes a worker executed, "executed": its autograded notebook}}."""
        try:
            self.send(students)
        except BrokenPipeError as exc:
            raise CourseError(f"the gradebook writer stopped; its log:\n{self.log_tail()}") from exc


# ---------------------------------------------------------------- progress


class Progress:
    """A bar with counts and an ETA: redrawn in place on a terminal, a line per change otherwise."""

    def __init__(self, total: int, out: TextIO) -> None:
        self.total, self.out, self.tty = total, out, out.isatty()
        self.start, self.shown = time.monotonic(), (-1, -1)
        self.last_draw = 0.0

    def update(self, summary: Summary, executing: int) -> None:
        done, now = summary.done, time.monotonic()
        if (done, len(summary.failed)) == self.shown and (not self.tty or now - self.last_draw < 1):
            return
        self.shown, self.last_draw = (done, len(summary.failed)), now
        elapsed = now - self.start
        filled = int(30 * done / max(self.total, 1))
        eta = f", about {elapsed / done * (self.total - done):.0f} s left" if 0 < done < self.total else ""
        failed = f", {len(summary.failed)} failed" if summary.failed else ""
        line = (f"[{'#' * filled}{'.' * (30 - filled)}] {done}/{self.total} ({len(summary.graded)} graded{failed};"
                f" {executing} with workers; {elapsed:.0f} s{eta})")
        print(f"\r{line}\033[K" if self.tty else line, end="" if self.tty else "\n", file=self.out, flush=True)

    def end(self) -> None:
        if self.tty:
            print(file=self.out)


# ---------------------------------------------------------------- the coordinator


def _chunks(students: list[str], size: int) -> Iterator[list[str]]:
    for index in range(0, len(students), size):
        yield students[index:index + size]


def chunk_size(students: int, slots: int) -> int:
    """Small chunks: a steady stream to the writer and a short tail. Each thread's executor stays up between
    chunks, so a chunk costs little more than its notebooks; a few per task spare a Dask scheduler."""
    return max(1, min(4, math.ceil(students / (8 * slots))))


def _check_released(course: Course) -> None:
    """Fail early, with what to do, when the gradebook does not know the assignment (never create one here)."""
    from nbgrader.api import Gradebook, MissingEntry
    from sqlalchemy import create_engine, inspect

    missing = CourseError(f"the gradebook has no {ASSIGNMENT} yet: run `make release` first")
    url = course.db_url
    if url.startswith("sqlite:///") and not Path(url.removeprefix("sqlite:///")).exists():
        raise missing
    engine = create_engine(url)
    try:
        if not inspect(engine).get_table_names():
            raise missing
    finally:
        engine.dispose()
    try:
        with Gradebook(url) as gradebook:
            gradebook.find_assignment(ASSIGNMENT)
    except MissingEntry:
        raise missing from None


def grade(
    course: Course, students: list[str], runner: LocalRunner | DaskRunner, chunk: int | None = None,
    out: TextIO | None = None, refused: dict[str, str] | None = None,
) -> Summary:
    """Grade `students`' submissions with `runner`; record each in the real gradebook; print a summary.

    Each submission is staged by intake first (coursekit/engine/intake.py): workers and the writer see only that.
    `refused`: ids intake refused ({id: why}), listed as failed.
    """
    out = out or sys.stdout  # looked up at each call: whoever replaced sys.stdout since import gets the output
    summary = Summary(total=len(students) + len(refused or {}))
    for student, problem in {**(refused or {}), **{s: intake.id_problem(s) for s in students}}.items():
        if problem:
            summary.failed[student] = (REFUSED_ID, problem)
    students = [s for s in students if s not in summary.failed]
    if not students:
        runner.close()
        if summary.failed:
            print(summary.table(), file=out, flush=True)
        else:
            print("nothing to grade: every submission is graded already (--force regrades them)", file=out)
        return summary
    taken = intake.screen(course, students)
    summary.blank = {r.student_id: r.reason for r in taken.rejected}
    summary.notes = taken.notes
    for student, reason in summary.blank.items():
        print(f"{intake.shown(student)}: graded as blank (0 points): {intake.shown(reason)}", file=out, flush=True)
    for student, notes in summary.notes.items():
        print(f"{intake.shown(student)}: {intake.shown('; '.join(notes))}", file=out, flush=True)
    size = chunk or chunk_size(len(students), runner.slots)
    scratch = Path(tempfile.mkdtemp(prefix="coursekit-grade-"))
    run: _Run | None = None
    writer: Writer | None = None
    start = summary.started = time.monotonic()
    try:
        _check_released(course)
        writer = Writer(course, scratch / "replay", scratch / "writer.log")
        run = _Run(course, runner, writer, summary, scratch / "replay", out)
        print(f"grading {len(students)} submissions on {runner.where}, {size} per task", file=out, flush=True)
        runner.start(build_bundle(course))
        run.until_done(_chunks(students, size), 2 * runner.slots, 4 * runner.slots * size)
    except KeyboardInterrupt:
        summary.interrupted = True
        with _no_second_interrupt():
            print("\nCtrl-C: stopping the workers; recording the grades already executed ...", file=out, flush=True)
            runner.stop()
            if run is not None:
                run.after_stop()
    finally:
        with _no_second_interrupt():
            try:
                runner.close()
                if writer is not None:
                    writer.close()
                if run is not None:
                    run.drain(wait=True)  # the writer has ended: its reader thread ends the replies
            finally:
                shutil.rmtree(scratch, ignore_errors=True)
    summary.elapsed = time.monotonic() - start
    write_run_record(course, summary, runner.where)
    print("\n" + summary.table(), file=out, flush=True)
    if summary.interrupted:
        rest = [s for s in students if s not in summary.graded]
        never = [s for s in rest if not (course.autograded / s / ASSIGNMENT).exists()]
        earlier = f" {len(rest) - len(never)} keep the grades of an earlier run (FORCE=1 regrades them)." \
            if len(never) < len(rest) else ""
        raise GradingInterrupted(
            f"interrupted: {len(summary.graded)} submissions were graded and are kept; {len(never)} are not graded "
            f"yet. Run `make grade` again to grade the rest.{earlier}"
        )
    return summary


@contextlib.contextmanager
def _no_second_interrupt() -> Iterator[None]:
    """A second Ctrl-C must not cut the clean-up short (kernels left running, a batch half recorded)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


class _Run:
    """Chunks in flight and results on their way to the writer."""

    def __init__(
        self, course: Course, runner: LocalRunner | DaskRunner, writer: Writer, summary: Summary, replay: Path,
        out: TextIO,
    ) -> None:
        self.course, self.runner, self.writer, self.summary, self.replay = course, runner, writer, summary, replay
        self.in_flight: list[tuple[list[str], ChunkFuture]] = []
        # The digest of the bytes each worker was handed: the writer records a submission only if it still has them.
        self.digests: dict[str, str] = {}
        self.replayed: dict[str, Path] = {}  # each student's replay copy, deleted once the writer has answered
        self.batches = 0
        self.progress = Progress(summary.total, out)

    def until_done(self, chunks: Iterator[list[str]], ahead: int, backlog: int) -> None:
        """Keep `ahead` chunks in flight and at most `backlog` submissions waiting for the writer: flat memory."""
        exhausted = False
        while not exhausted or self.in_flight or self.writer.in_flight:
            while not exhausted and len(self.in_flight) < ahead and self.writer.in_flight < backlog:
                share = next(chunks, None)
                if share is None:
                    exhausted = True
                    break
                notebooks = {s: intake.staged_notebook(self.course, s).read_bytes() for s in share}
                self.digests.update((s, sha256(data)) for s, data in notebooks.items())
                self.in_flight.append((share, self.runner.submit(notebooks)))
            self.take_finished()
            if exhausted and not self.in_flight:
                self.writer.finish()
            self.drain(wait=False)
            self.progress.update(self.summary, sum(len(share) for share, _ in self.in_flight))
            time.sleep(0.1)
        self.progress.end()

    def take_finished(self) -> None:
        still = []
        for share, future in self.in_flight:
            if future.done():
                self.batches += 1
                self._take(share, future, self.replay / f"batch{self.batches}")
            else:
                still.append((share, future))
        self.in_flight = still

    def after_stop(self) -> None:
        """After Ctrl-C: keep every chunk that finished executing; record them; drop the rest."""
        deadline = time.monotonic() + 60
        while self.in_flight and time.monotonic() < deadline:
            self.take_finished()
            time.sleep(0.1)
        self.writer.finish()
        self.drain(wait=True)

    def _take(self, share: list[str], future: ChunkFuture, folder: Path) -> None:
        """A finished chunk: its notebooks into the replay folder for the writer, its failures into the summary."""
        try:
            results = future.result()
        except (ChunkStopped, CancelledError):
            return
        except Exception as exc:  # the worker process died, or the cluster lost it
            if type(exc).__name__ == "CancelledError":  # Dask's own, when Ctrl-C cancelled the task
                return
            reason = f"{type(exc).__name__}: {exc}".splitlines()[0][:300]
            results = {s: ChunkResult(s, None, WORKER_CRASH, reason) for s in share}
        executed = {}
        for student, result in results.items():
            if result.notebook is None:
                self.summary.failed[student] = (result.failure or WORKER_CRASH, result.reason)
                self.digests.pop(student, None)
                continue
            # Literal paths: the id is a folder name, never a pattern (ids come from folder names, routes.py).
            path = folder / "autograded" / student / ASSIGNMENT / NOTEBOOK
            path.parent.mkdir(parents=True)
            path.write_bytes(result.notebook)
            self.replayed[student] = folder / "autograded" / student
            self.summary.execution_seconds[student] = result.seconds
            executed[student] = {"sha256": self.digests.pop(student), "executed": str(path)}
        if executed:
            self.writer.record(executed)

    def drain(self, wait: bool) -> None:
        """Take the writer's replies: graded students into the summary, their replay copies deleted."""
        while self.writer.in_flight:
            try:
                reply = self.writer.replies.get(timeout=None if wait else 0)
            except queue.Empty:
                return
            if reply is None:
                self.writer.in_flight = 0
                raise CourseError(f"the gradebook writer stopped; its log:\n{self.writer.log_tail()}")
            if self.summary.first_recorded is None and reply["ok"]:
                self.summary.first_recorded = (time.monotonic() - self.summary.started, len(reply["ok"]))
            self.summary.graded += reply["ok"]
            for student, reason in reply["failed"].items():
                self.summary.failed[student] = (WRITER_ERROR, reason)
            self.writer.in_flight -= len(reply["ok"]) + len(reply["failed"])
            for student in [*reply["ok"], *reply["failed"]]:
                folder = self.replayed.pop(student, None)
                if folder is not None:
                    shutil.rmtree(folder, ignore_errors=True)


def grade_course(
    course: Course, force: bool, workers: int, scheduler: str | None = None, chunk: int | None = None,
    out: TextIO | None = None, student: str | None = None,
) -> Summary:
    """`coursekit grade`: every pending submission, on this machine's cores or on a Dask cluster.

    `student`: that one only, graded or not, the same way (the same intake, workers and writer), so a
    submission gets the same grade alone as in its cohort.
    """
    out = out or sys.stdout
    found = intake.find(course)
    if student is not None:
        students, refused = [checked_student(found, student)], {}
    else:
        students, refused = pending(course, force, found.students), found.refused
    if not students and not refused:
        print("nothing to grade: every submission is graded already (--force regrades them)", file=out)
        return Summary(total=0)
    if not force and student is None:  # pending() left out the completely graded ones
        for partial in completion.clear_partial(course, students):
            print(f"{intake.shown(partial)}: {completion.why_again(course, partial)}", file=out)
    if students:
        summary = grade(course, students, runner_for(scheduler, workers), chunk, out, refused)
    else:  # only refused ids: nothing to start a runner for
        summary = Summary(total=len(refused), failed={s: (REFUSED_ID, why) for s, why in refused.items()})
        write_run_record(course, summary, "nowhere (no submission to grade)")
        print(summary.table(), file=out, flush=True)
    if summary.failed:
        refusals = sum(why == REFUSED_ID for why, _ in summary.failed.values())
        raise CourseError(
            f"{len(summary.failed)} of {summary.total} submissions could not be graded (see the table above); "
            "they stay ungraded, and `make grade` tries them again"
            + (f". {refusals} have an id intake refuses: rename their folders in submitted/ (docs/security.md, "
               "Intake)" if refusals else "")
        )
    return summary


def write_run_record(course: Course, summary: Summary, where: str) -> None:
    """Write RUN_RECORD: this run's times, and each student's last outcome (kept from earlier runs for students
    this run did not touch, so a `STUDENT=` regrade does not forget the class). A record that cannot be written
    costs the report, never the grades."""
    path = course.root / RUN_RECORD
    try:
        earlier = json.loads(path.read_text()).get("students", {}) if path.is_file() else {}
    except (OSError, ValueError, AttributeError):
        earlier = {}
    students: dict[str, dict[str, object]] = dict(earlier) if isinstance(earlier, dict) else {}
    for student in summary.graded:
        entry: dict[str, object] = {"outcome": "graded"}
        if student in summary.blank:
            entry = {"outcome": "graded blank", "why": summary.blank[student]}
        if student in summary.notes:
            entry["notes"] = summary.notes[student]
        if student in summary.execution_seconds:
            entry["execution_seconds"] = round(summary.execution_seconds[student], 3)
        students[student] = entry
    for student, (why, detail) in summary.failed.items():
        students[student] = {"outcome": "failed", "why": why, "detail": detail}
    done = max(summary.done, 1)
    record = {
        "started": summary.started_at.isoformat(timespec="seconds"),
        "finished": datetime.now(UTC).isoformat(timespec="seconds"),
        "elapsed_seconds": round(summary.elapsed, 3),
        "where": where,
        "submissions": summary.total,
        "graded": len(summary.graded),
        "failed": len(summary.failed),
        "interrupted": summary.interrupted,
        "seconds_per_submission": round(summary.elapsed / done, 3),
        "steady_seconds_per_submission": None if summary.steady_rate() is None else round(summary.steady_rate(), 3),
        "first_grade_after_seconds": None if summary.first_recorded is None else round(summary.first_recorded[0], 3),
        "students": students,
    }
    try:
        scratch = path.with_name(f".{path.name}.{os.getpid()}")
        scratch.write_text(json.dumps(record, indent=1, ensure_ascii=False))
        scratch.replace(path)
    except OSError as exc:
        print(f"could not write {path.name}: {exc}", file=sys.stderr)


def checked_student(found: intake.Found, student: str) -> str:
    """`student` for STUDENT=, when the id is allowed and has a submission; else why not, escaped."""
    problem = intake.id_problem(student)
    if problem:
        raise CourseError(f"refusing the student id {intake.shown(student)!r}: {problem} (docs/security.md, Intake)")
    if student not in found.students:
        raise CourseError(f"no submission for {intake.shown(student)!r}: expected submitted/<id>/{ASSIGNMENT}/")
    return student
