"""Submission folders that hold more than a notebook, for the intake block of the hostile catalog.

Each function gets the submission folder (submitted/<id>/<assignment>) after the catalog wrote the
notebook, and plants links, named pipes, extra files or a timestamp.txt there, or replaces the notebook or
the folder by a link. Zip or tar uploads unpacked on the grading machine keep all of these.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path

from nbformat import NotebookNode

from coursekit import ASSIGNMENT

NOTEBOOK = f"{ASSIGNMENT}.ipynb"
# Names the kernel must never see in its folder: an `intake_extra_*` entry's model cell fails if one is there.
HANDED_IN = ("planted.txt", "matplotlib_inline.py", "passwd", "gradebook.db", "checks.py", "source.ipynb", "zero",
             "urandom", "pipe", "dangling", "root", "sub")
CHECK_KERNEL_FOLDER = (
    "import os as _os\n"
    f"if [_n for _n in {HANDED_IN!r} if _os.path.lexists(_n)]:\n"
    "    raise RuntimeError('a handed-in file reached the kernel')"
)
# The honest student whose folder the link entries point at (tests/test_adversarial.py grades them together).
OTHER_STUDENT = "correct_reference"


def _course(folder: Path) -> Path:
    return folder.parents[2]


def notebook_link(target: Callable[[Path], str]) -> Callable[[Path], None]:
    """The notebook is a symbolic link to `target(folder)`."""
    def plant(folder: Path) -> None:
        os.symlink(target(folder), folder / NOTEBOOK)
    return plant


def to_source(folder: Path) -> str:
    return str(_course(folder) / "source" / ASSIGNMENT / NOTEBOOK)


def to_source_relative(folder: Path) -> str:
    return f"../../../source/{ASSIGNMENT}/{NOTEBOOK}"


def notebook_fifo(folder: Path) -> None:
    os.mkfifo(folder / NOTEBOOK)


def assignment_folder_link(folder: Path) -> None:
    """The assignment folder is a link to another student's."""
    folder.rmdir()
    os.symlink(f"../{OTHER_STUDENT}/{ASSIGNMENT}", folder)


def student_folder_link(folder: Path) -> None:
    """The student's folder itself is a link to another student's."""
    folder.rmdir()
    folder.parent.rmdir()
    os.symlink(OTHER_STUDENT, folder.parent)


def extra_links(folder: Path) -> None:
    """Links to what the grader keeps, beside an honest notebook: they were copied, followed, into feedback/."""
    course = _course(folder)
    os.symlink("../../../gradebook.db", folder / "gradebook.db")
    os.symlink(course / "grader_tests" / "checks.py", folder / "checks.py")
    os.symlink(course / "source" / ASSIGNMENT / NOTEBOOK, folder / "source.ipynb")
    os.symlink("/etc/passwd", folder / "passwd")
    os.symlink("/", folder / "root")


def extra_specials(folder: Path) -> None:
    """Devices and a pipe: /dev/zero was copied until a file-size limit stopped it; a FIFO failed the run."""
    os.symlink("/dev/zero", folder / "zero")
    os.symlink("/dev/urandom", folder / "urandom")
    os.symlink(folder / "nowhere", folder / "dangling")
    os.mkfifo(folder / "pipe")


def extra_files(folder: Path) -> None:
    """Regular files: a module that shadowed matplotlib_inline in the kernel, data, a subfolder."""
    (folder / "matplotlib_inline.py").write_text("raise ImportError('a handed-in module shadowed this one')\n")
    (folder / "planted.txt").write_text("x" * 1000)
    (folder / "sub").mkdir()
    (folder / "sub" / "data.csv").write_text("1,2\n")


def timestamp(content: bytes | str) -> Callable[[Path], None]:
    """A timestamp.txt: bytes, or "link" (to /dev/zero) or "fifo"."""
    def plant(folder: Path) -> None:
        target = folder / "timestamp.txt"
        if content == "link":
            os.symlink("/dev/zero", target)
        elif content == "fifo":
            os.mkfifo(target)
        else:
            assert isinstance(content, bytes)
            target.write_bytes(content)
    return plant


def with_surrogate_markdown(notebook: NotebookNode) -> bytes:
    """A markdown cell holding a lone surrogate, written as JSON's \\ud800 escape (valid JSON)."""
    cells = notebook["cells"]
    cells.insert(1, {"cell_type": "markdown", "id": "surrogate", "metadata": {}, "source": "my notes \ud800 here"})
    return json.dumps(notebook).encode()


def ascii_json(notebook: NotebookNode) -> bytes:
    """The notebook as JSON with every non-ASCII character escaped (how lone surrogates survive in a file)."""
    return json.dumps(notebook).encode()


def marked(notebook: NotebookNode) -> NotebookNode:
    """The kit's old stand-in mark, which once made intake skip a notebook (size limit included)."""
    notebook.metadata["coursekit-rejected"] = "put in place by the kit (says the student)"
    return notebook


def nbgrader_metadata_list(notebook: NotebookNode) -> None:
    """The first code cell's nbgrader metadata is a list, where nbgrader expects a mapping."""
    next(cell for cell in notebook.cells if cell.cell_type == "code").metadata["nbgrader"] = []
