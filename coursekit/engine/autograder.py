"""A long-lived `nbgrader autograde`: student ids in, one outcome each out. Pays nbgrader's imports once.

`python -m coursekit.engine.autograder [nbgrader options]`, started in a course directory, initialises nbgrader's
`AutogradeApp` once with the course's config (plus the options), then reads one batch a line on stdin and runs
nbgrader's `Autograde` converter for each student in it (what `nbgrader autograde ASSIGNMENT --force --student
ID` runs, with the id taken literally: coursekit/engine/routes.py), replying one JSON line a batch on stdout:
{"ok": [ids], "failed": {id: reason}}, where failed means nbgrader raised or logged an error. It ends when
stdin closes.

The kit runs it in two places (coursekit/engine/grading.py, coursekit/engine/workers.py):
- each worker's executor, in a scratch course with a structure-only gradebook, with warm kernels: an
  `nbgrader` process per chunk would pay 3-7 s of imports each time. A batch is a JSON list of ids.
- the one gradebook writer, in the real course with COURSEKIT_REPLAY_DIR set. It never executes: a batch is
  {id: {"sha256": digest of the submitted bytes a worker executed, "executed": that worker's autograded
  notebook}}, and a submission whose bytes or cells do not match fails with the reason (`ReplayAutograde`).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import queue
import re
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

from coursekit import ASSIGNMENT


class _Errors(logging.Handler):
    """Keeps the ERROR records nbgrader logs while one student is graded."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


def _reason(messages: list[str]) -> str:
    """The last line of the traceback nbgrader logged (its exception), else its last error."""
    for message in reversed(messages):
        lines = [line.strip() for line in message.splitlines() if line.strip()]
        if len(lines) > 1 and lines[0].startswith("Traceback"):
            # The kit's own refusals read better without their module's path.
            return re.sub(r"^coursekit\.(?:\w+\.)*(\w+): ", r"\1: ", lines[-1])[:300]
    return (messages[-1] if messages else "nbgrader autograde failed")[:300]


def main(argv: list[str]) -> int:
    # nbgrader and kernels may print; this process's stdout carries only the protocol.
    protocol = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)
    from nbgrader.apps.autogradeapp import AutogradeApp

    from coursekit.engine.routes import LiteralAutograde, ReplayAutograde, autograde_route

    app = AutogradeApp()
    app.initialize([ASSIGNMENT, "--force", *argv])
    app.coursedir.assignment_id = ASSIGNMENT
    writer = autograde_route(os.environ) == "replay"
    errors = _Errors()
    app.log.addHandler(errors)
    for line in sys.stdin:
        reply: dict[str, Any] = {"ok": [], "failed": {}}
        batch = json.loads(line)
        for student in batch:
            errors.messages.clear()
            app.coursedir.student_id = student
            try:
                if writer:
                    converter = ReplayAutograde(coursedir=app.coursedir, parent=app)
                    converter.replay = batch[student] if isinstance(batch, dict) else None
                else:
                    converter = LiteralAutograde(coursedir=app.coursedir, parent=app)
                converter.start()
            except Exception:  # nbgrader logs why (NbGraderException and the rest): the reason comes from there
                reply["failed"][student] = _reason(errors.messages)
                continue
            if errors.messages:
                reply["failed"][student] = _reason(errors.messages)
            else:
                reply["ok"].append(student)
        protocol.write(json.dumps(reply) + "\n")
    return 0


def ignore_interrupts() -> None:
    """In a child before it runs: the terminal's Ctrl-C is the coordinator's to handle.

    The child stays in the coordinator's process group, so whoever kills that group kills it too.
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)


class AutograderProcess:
    """The client: batches in on stdin; replies read by a thread into `replies` (None once it ended)."""

    def __init__(self, cwd: Path, env: dict[str, str], log: Path, options: tuple[str, ...] = ()) -> None:
        self.log_path = log
        self._log = open(log, "w")  # noqa: SIM115 - closed in close()
        self.process = subprocess.Popen(
            [sys.executable, "-m", "coursekit.engine.autograder", *options], cwd=cwd, env=env,
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._log, text=True,
            preexec_fn=ignore_interrupts,  # Ctrl-C must not stop it halfway through a batch
        )
        self.replies: queue.Queue[dict[str, Any] | None] = queue.Queue()
        self.in_flight = 0
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.replies.put(json.loads(line))
        self.replies.put(None)

    def send(self, students: list[str] | dict[str, Any]) -> None:
        """A batch: ids, or the writer's {id: replay}. Raises BrokenPipeError when the process has ended."""
        assert self.process.stdin is not None
        # Ctrl-C halfway through a line would hand the process half a batch.
        blocked = threading.current_thread() is threading.main_thread()
        if blocked:
            signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
        try:
            self.process.stdin.write(json.dumps(students) + "\n")
            self.process.stdin.flush()
            self.in_flight += len(students)
        finally:
            if blocked:
                signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})

    def finish(self) -> None:
        """No more batches: the process answers what it has, then ends."""
        if self.process.stdin is not None and not self.process.stdin.closed:
            with contextlib.suppress(BrokenPipeError):
                self.process.stdin.close()

    def close(self, timeout: float = 600) -> None:
        self.finish()
        try:
            self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
        self._log.close()

    def kill(self) -> None:
        self.process.kill()
        self.process.wait()

    def log_tail(self) -> str:
        self._log.flush()
        return self.log_path.read_text(errors="replace")[-3000:]


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
