"""A fix to nbgrader 0.9.6 under SQLAlchemy 2, applied in every nbgrader process (nbgrader_config.py imports this).

`Gradebook.add_submission` builds the submission's objects, then adds them to the session. Between the two,
it reads `submission.assignment.notebooks`, a lazy load that autoflushes the session, which holds the
half-built objects only through relationships: SQLAlchemy 2 then warns three times per new student
("SAWarning: Object of type <SubmittedAssignment> not in session, add operation along
'Student.submissions' will not proceed ..."), in the middle of an instructor's output. SQLAlchemy's own
advice, in the warning, is to build them under `no_autoflush`: nothing is flushed before `db.add` and the
commit, which write the same rows as before.
"""

from __future__ import annotations

import functools
from typing import Any

from nbgrader.api import Gradebook

_add_submission = Gradebook.add_submission


@functools.wraps(_add_submission)
def _add_submission_without_autoflush(self: Gradebook, assignment: str, student: str, **kwargs: Any) -> Any:
    with self.db.no_autoflush:
        return _add_submission(self, assignment, student, **kwargs)


if not getattr(Gradebook.add_submission, "_coursekit_fixed", False):
    _add_submission_without_autoflush._coursekit_fixed = True  # type: ignore[attr-defined]
    Gradebook.add_submission = _add_submission_without_autoflush  # type: ignore[method-assign]
