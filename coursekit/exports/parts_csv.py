"""The per-part CSV: each student's points per group of test cells, the total, the late penalty and the final
score (`coursekit export --format parts`, grades_parts.csv by default).

    student_id,model,loss,train,convergence,plot,total,late_penalty,final

`total` is nbgrader's raw score (the sum of the parts), `late_penalty` the points nbgrader took off for
lateness, `final` = max(0, total - late_penalty): the numbers of `coursekit scores` and grades.csv.
"""

from __future__ import annotations

from pathlib import Path

from coursekit.exports.grade_rows import Grades, plain_decimal, write_csv
from coursekit.exports.scores import GROUPS

HEADER = ("student_id", *GROUPS, "total", "late_penalty", "final")


def rows(grades: Grades) -> list[list[str]]:
    return [[g.student_id, *(plain_decimal(g.groups[group]) for group in GROUPS), plain_decimal(g.raw),
             plain_decimal(g.penalty), plain_decimal(g.final)] for g in grades.students]


def write(grades: Grades, path: Path) -> None:
    write_csv(path, HEADER, rows(grades))
