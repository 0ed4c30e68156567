"""The one gradebook writer: nbgrader's own autograde, with outputs replayed from the workers.

Runs as `python -m coursekit.recorder` in the course directory, with COURSEKIT_REPLAY_DIR set (so the
course's nbgrader_config.py puts `ReplayExecution` in Execute's place). It pays nbgrader's imports once,
then reads one JSON list of student ids a line on stdin and runs nbgrader's `Autograde` converter (what
`nbgrader autograde ASSIGNMENT --force --student ID` runs) for each, writing one JSON line a batch on
stdout: {"recorded": [ids], "failed": {id: reason}}. Only this process writes the gradebook.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from typing import Any

from . import ASSIGNMENT


class _Errors(logging.Handler):
    """Keeps the ERROR records nbgrader logs while one student is recorded."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


def _reason(messages: list[str]) -> str:
    for message in reversed(messages):
        lines = [line.strip() for line in message.splitlines() if line.strip()]
        if len(lines) > 1 and lines[0].startswith("Traceback"):
            return lines[-1][:300]
    return (messages[-1] if messages else "nbgrader autograde failed")[:300]


def main() -> int:
    # nbgrader and kernels may print; this process's stdout carries only the protocol.
    protocol = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)
    from nbgrader.apps.autogradeapp import AutogradeApp
    from nbgrader.converters import Autograde
    from nbgrader.converters.base import NbGraderException

    app = AutogradeApp()
    app.initialize([ASSIGNMENT, "--force"])
    app.coursedir.assignment_id = ASSIGNMENT
    errors = _Errors()
    app.log.addHandler(errors)
    for line in sys.stdin:
        batch: list[str] = json.loads(line)
        reply: dict[str, Any] = {"recorded": [], "failed": {}}
        for student in batch:
            errors.messages.clear()
            app.coursedir.student_id = student
            try:
                Autograde(coursedir=app.coursedir, parent=app).start()
            except (NbGraderException, Exception):
                reply["failed"][student] = _reason(errors.messages) if errors.messages else "nbgrader autograde failed"
                continue
            if errors.messages:
                reply["failed"][student] = _reason(errors.messages)
            else:
                reply["recorded"].append(student)
        protocol.write(json.dumps(reply) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
