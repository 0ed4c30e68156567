"""`make gradescope`: the autograder zip Gradescope takes (its specification: setup.sh and run_autograder at the
root; the rest unpacks to /autograder/source).

The zip holds what grading one notebook reads and nothing else: the kit's code, the checks, the source and
release, the config and the pins. Never a gradebook, submissions, grading output or a virtual environment
(setup.sh builds one on Gradescope's image). Its entries carry a fixed date, so the same kit gives the same zip.
"""

from __future__ import annotations

import argparse
import sys
import zipfile
from collections.abc import Iterator
from pathlib import Path

from coursekit import ASSIGNMENT
from coursekit.engine.one_notebook import KIT

HERE = Path(__file__).resolve().parent
ZIP = KIT / "gradescope" / f"{ASSIGNMENT}_autograder.zip"
# At the zip's root, executable (Gradescope copies run_autograder to /autograder/run_autograder).
SCRIPTS = ("setup.sh", "run_autograder")
# Unpacked to /autograder/source. demo/: a scratch course copies it (Course.scratch_copy).
CONTENT = ("coursekit", "grader_tests", "grader_observe", "source", "release", "demo", "nbgrader_config.py",
           "pyproject.toml", "requirements.lock", "README.md")
SKIPPED = {"__pycache__", ".ipynb_checkpoints", ".pytest_cache"}
DATE = (1980, 1, 1, 0, 0, 0)


def files(kit: Path = KIT) -> Iterator[Path]:
    for name in CONTENT:
        path = kit / name
        if path.is_file():
            yield path
        else:
            for item in sorted(path.rglob("*")):
                parts = item.relative_to(kit).parts
                if item.is_file() and not item.is_symlink() and not SKIPPED & set(parts) and item.suffix != ".pyc":
                    yield item


def _add(archive: zipfile.ZipFile, name: str, data: bytes, mode: int) -> None:
    info = zipfile.ZipInfo(name, DATE)
    info.external_attr = (0o100000 | mode) << 16
    info.compress_type = zipfile.ZIP_DEFLATED
    archive.writestr(info, data)


def build(target: Path = ZIP, kit: Path = KIT) -> Path:
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_suffix(".partial")
    with zipfile.ZipFile(partial, "w") as archive:
        for script in SCRIPTS:
            _add(archive, script, (HERE / script).read_bytes(), 0o755)
        for path in files(kit):
            _add(archive, path.relative_to(kit).as_posix(), path.read_bytes(), 0o644)
    partial.replace(target)
    return target


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", type=Path, default=ZIP)
    target = build(parser.parse_args(argv).output)
    with zipfile.ZipFile(target) as archive:
        count = len(archive.namelist())
    print(f"{target}: {count} files, {target.stat().st_size / 1e6:.1f} MB. Upload it on the assignment's "
          "Configure Autograder page (README.md, Gradescope).")
    return 0


if __name__ == "__main__":
    sys.exit(main())
