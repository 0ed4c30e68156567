"""No target deletes student work, except `make delete-student-work`, which asks first (the real Makefile)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from .conftest import REPO

NOTEBOOK = "custom_training_basics/custom_training_basics.ipynb"
STUDENT_WORK = [f"submitted/ann/{NOTEBOOK}", f"submitted/bob/{NOTEBOOK}", f"rejected/eve/{NOTEBOOK}"]
TRACKED = ["submitted/README.md", "feedback/README.md", "autograded/README.md"]
REBUILT = [f"autograded/ann/{NOTEBOOK}", "feedback/ann/custom_training_basics/custom_training_basics.html",
           "grades.csv", "grades_canvas.csv", "feedback_packs/moodle.zip", "artifacts/memory.png",
           "demo-course/.coursekit-demo-course",
           f"demo-course/submitted/ann/{NOTEBOOK}"]


def _course(root: Path) -> Path:
    shutil.copy(REPO / "Makefile", root / "Makefile")
    for relative in [*STUDENT_WORK, *TRACKED, *REBUILT, "gradebook.db"]:
        (root / relative).parent.mkdir(parents=True, exist_ok=True)
        (root / relative).write_text(relative)
    return root


def _make(root: Path, target: str, answer: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["make", "-s", "-C", str(root), target], input=answer, text=True, capture_output=True,
                          check=False, timeout=60)


def _exists(root: Path, relatives: list[str]) -> dict[str, bool]:
    return {relative: (root / relative).exists() for relative in relatives}


def test_make_clean_removes_only_what_grading_rebuilds(tmp_path: Path) -> None:
    root = _course(tmp_path)
    # A symlink in a folder clean empties: the link goes, never what it points to.
    outside = tmp_path.parent / f"{tmp_path.name}-outside"
    outside.mkdir()
    (outside / "keep.txt").write_text("not the course's")
    (root / "autograded" / "link").symlink_to(outside, target_is_directory=True)

    result = _make(root, "clean")
    assert result.returncode == 0, result.stderr
    assert all(_exists(root, [*STUDENT_WORK, *TRACKED, "gradebook.db"]).values())
    assert not any(_exists(root, REBUILT).values())
    assert not (root / "autograded" / "link").is_symlink()
    assert (outside / "keep.txt").read_text() == "not the course's"
    assert (root / STUDENT_WORK[0]).read_text() == STUDENT_WORK[0]


def test_make_clean_keeps_the_samples_kept_in_git(tmp_path: Path) -> None:
    """artifacts/ holds what tests write and the samples the kit keeps (screenshots, exports): clean removes only
    the former."""
    root = _course(tmp_path)
    (root / ".gitignore").write_text("/artifacts/\n")
    kept = root / "artifacts" / "lms" / "grades_canvas.csv"
    kept.parent.mkdir(parents=True)
    kept.write_text("kept")
    git = ["git", "-C", str(root), "-c", "user.name=t", "-c", "user.email=t@t"]
    subprocess.run([*git, "init", "-q"], check=True)
    subprocess.run([*git, "add", "-f", ".gitignore", "artifacts/lms/grades_canvas.csv"], check=True)
    subprocess.run([*git, "commit", "-qm", "samples"], check=True)
    result = _make(root, "clean")
    assert result.returncode == 0, result.stderr
    assert kept.read_text() == "kept"
    assert not (root / "artifacts" / "memory.png").exists()


@pytest.mark.parametrize("answer", [None, "", "y", "yes", "delete", "DELETE STUDENT WORK"])
def test_delete_student_work_deletes_nothing_without_the_exact_answer(tmp_path: Path, answer: str | None) -> None:
    root = _course(tmp_path)
    result = _make(root, "delete-student-work", answer)
    assert result.returncode != 0
    assert "Nothing deleted." in result.stdout
    assert all(_exists(root, [*STUDENT_WORK, *TRACKED, *REBUILT, "gradebook.db"]).values())


def test_delete_student_work_asks_then_deletes_the_work_but_not_the_tracked_files(tmp_path: Path) -> None:
    root = _course(tmp_path)
    result = _make(root, "delete-student-work", "delete student work\n")
    assert result.returncode == 0, result.stdout + result.stderr
    assert 'Type "delete student work" to go on' in result.stdout
    assert not any(_exists(root, [*STUDENT_WORK, f"autograded/ann/{NOTEBOOK}", "gradebook.db", "grades.csv"]).values())
    assert all(_exists(root, TRACKED).values())


def test_no_other_target_removes_submissions() -> None:
    """Every `rm` in the Makefile: only clean's and delete-student-work's, and only the latter names submitted/."""
    recipes: dict[str, list[str]] = {}
    target = ""
    for line in (REPO / "Makefile").read_text().splitlines():
        if line and not line[0].isspace() and ":" in line and not line.startswith(("#", ".")):
            target = line.split(":", 1)[0]
        elif line.startswith("\t"):
            recipes.setdefault(target, []).append(line)
    removing = {name for name, lines in recipes.items() if any("rm " in line for line in lines)}
    assert removing == {"clean", "delete-student-work"}
    assert not any("submitted" in line or "rejected" in line for line in recipes["clean"])
