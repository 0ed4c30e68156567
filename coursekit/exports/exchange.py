"""Feedback out through nbgrader's exchange: `nbgrader release_feedback` and formgrader's "Release feedback".

nbgrader names a student's feedback in the exchange after the `submission_secret.txt` that `nbgrader submit`
wrote into their submission (`collect` copies it, the kit's intake keeps it: coursekit/engine/intake.py), and
`nbgrader fetch_feedback` finds it with the copy in the student's own cache. A submission that came in another
way (an LMS archive, a folder copied into submitted/, the demo cohort) has no secret: no student could fetch its
feedback from the exchange, and nbgrader's own release stops at the first such folder with a FileNotFoundError,
releasing nobody after it. Here those are left out and listed, and every other student's feedback is released as
nbgrader releases it (the same file names, so nbgrader's fetch_feedback and list find them).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from nbgrader.exchange.default.release_feedback import ExchangeReleaseFeedback
from nbgrader.utils import notebook_hash

from coursekit.engine.intake import SECRET, TIMESTAMP, id_problem, shown

SHOWN_IDS = 8


class CourseReleaseFeedback(ExchangeReleaseFeedback):
    """nbgrader's release_feedback for the students who submitted through the exchange; the others are listed."""

    def _students(self) -> list[str]:
        if self.coursedir.student_id not in ("", "*"):
            return [self.coursedir.student_id]
        feedback = Path(self.coursedir.root) / self.coursedir.feedback_directory
        if not feedback.is_dir():
            return []
        # Listed, not globbed as nbgrader does: a glob skips ids that start with a dot.
        return sorted(entry.name for entry in os.scandir(feedback)
                      if entry.is_dir(follow_symlinks=False) and id_problem(entry.name) is None)

    def copy_files(self) -> None:
        excluded = set(filter(None, self.coursedir.student_id_exclude.split(",")))
        without_secret: list[str] = []
        released = 0
        for student in self._students():
            if student in excluded:
                continue
            folder = Path(self.coursedir.format_path(self.coursedir.feedback_directory, student,
                                                     self.coursedir.assignment_id))
            pages = sorted(p for p in folder.glob("*.html") if p.is_file() and not p.is_symlink()) \
                if folder.is_dir() and not folder.is_symlink() else []
            if not pages:
                continue
            secret_file = folder / SECRET
            if secret_file.is_symlink() or not secret_file.is_file():
                without_secret.append(student)
                continue
            secret = secret_file.read_text()
            stamp = folder / TIMESTAMP
            timestamp = stamp.read_text().strip() if stamp.is_file() and not stamp.is_symlink() else "no time"
            for page in pages:
                checksum = notebook_hash(secret=secret, notebook_id=page.stem)
                # Written aside, then moved: a student fetching meanwhile never reads half a page (as nbgrader).
                partial = Path(self.dest_path) / f"{checksum}-tmp.html"
                shutil.copy(page, partial)
                os.replace(partial, Path(self.dest_path) / f"{checksum}.html")
                self.log.info("Released feedback for student %r on %s/%s/%s (%s)", shown(student),
                              self.coursedir.course_id, self.coursedir.assignment_id, page.stem, timestamp)
                released += 1
        if without_secret:
            more = f" and {len(without_secret) - SHOWN_IDS} more" if len(without_secret) > SHOWN_IDS else ""
            self.log.warning(
                "Not released through the exchange, for %d student(s) who did not submit through it (no %s: an LMS "
                "upload, or copied into submitted/): %s%s. No student could fetch it; hand out their "
                "feedback/<student>/%s/ through your LMS.",
                len(without_secret), SECRET, ", ".join(shown(s) for s in without_secret[:SHOWN_IDS]), more,
                self.coursedir.assignment_id,
            )
        self.log.info("Released %d feedback page(s) to %s", released, self.dest_path)
