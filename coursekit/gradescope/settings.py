"""The Gradescope autograder's settings: the one place to change them (then `make gradescope` and upload again).

README.md, "Gradescope", explains each choice.
"""

from __future__ import annotations

from typing import Literal

Visibility = Literal["hidden", "after_due_date", "after_published", "visible"]

# When students see each hidden-test result (its points and the check's message). "after_due_date": while they
# can still resubmit, the hidden tests are not an oracle to iterate against; the visible tests in the notebook
# are theirs for that. Gradescope hides a student's total score while any test is hidden from them.
# "visible" shows everything at once (the same messages `make feedback` gives, never test code).
VISIBILITY: Visibility = "after_due_date"

# Whether the notebook was found and graded, and what to do when it was not: always shown at once, so a student
# whose notebook was missing, renamed or damaged can fix it and resubmit before the due date.
SUBMISSION_VISIBILITY: Visibility = "visible"

# Gradescope's time limit for one run (Autograder Settings; default 10 minutes, at most 40). Keep it equal to
# what the assignment's settings say: the kit stops the student's kernel well before it, so results.json is
# always written by the kit, with the points of the parts that ran, never replaced by Gradescope's timeout.
TIME_LIMIT_SECONDS = 600

# Memory for the student's kernel (the kit's default outside Gradescope is 2048). The container must hold the
# grader too: README.md gives the container size to choose.
KERNEL_MEMORY_MB = 2048
