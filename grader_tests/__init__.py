"""Hidden checks for Custom Training Basics. Never released to students.

Run them against any notebook with `pytest grader_tests --notebook PATH`.
"""

from pathlib import Path

STAND_INS = Path(__file__).with_name("stand_ins.py")


def stand_ins_source() -> str:
    """The stand-in parts' source text, as coursekit.judge injects it into hidden regions."""
    return STAND_INS.read_text(encoding="utf-8")
