"""Feedback shows a student's crash as their frames and the error, with no path of the grading machine.

The tracebacks in tests/data/student_tracebacks.json are real: the demo cohort's own errors (TensorFlow's
InvalidArgumentError, a GradientTape failure, matplotlib's shape error), ANSI colour codes and all, as the
warm kernels recorded them in the autograded notebooks.
"""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path

import nbformat
import pytest

from coursekit.steps.trim_tracebacks import ANSI, TrimTracebacks, scrub_paths, trim_traceback

DATA = json.loads((Path(__file__).parent / "data" / "student_tracebacks.json").read_text())
ERRORS = [entry for entry in DATA if entry["output"]["output_type"] == "error"]
# What must never reach a student: where the course, its environment and its scratch files live.
ENVIRONMENT = re.compile(r"\.venv|site-packages|dist-packages|/tmp/|/home/|/root/|/work/|/usr/lib")


def _plain(lines: list[str]) -> str:
    return ANSI.sub("", "\n".join(lines))


@pytest.mark.parametrize("entry", ERRORS, ids=lambda e: f"{e['student']}-{e['cell']}")
def test_real_tracebacks_keep_the_students_frames_and_error_and_lose_every_path(entry: dict) -> None:
    original = entry["output"]["traceback"]
    trimmed = trim_traceback(original)
    text = _plain(trimmed)
    assert not ENVIRONMENT.search(text), text
    student_frames = [line for line in original if ANSI.sub("", line).lstrip().startswith("Cell In[")]
    assert student_frames and all(frame in trimmed for frame in student_frames)  # kept whole, colours too
    assert trimmed[-1] == original[-1]  # the error line
    assert "Traceback (most recent call last)" in text
    library = [line for line in original if ANSI.sub("", line).lstrip().startswith("File ")]
    if library:
        assert re.search(rf"… {len(library)} frames? inside (tensorflow|matplotlib)", text), text
        # No library source either: its lines are what made the page long.
        assert "def _run_op" not in text and "_process_plot_var_args" not in text
        assert len(text) < len(_plain(original)) / 2


def test_library_frames_between_student_frames_are_collapsed_run_by_run() -> None:
    lines = [
        "\x1b[31m----\x1b[39m",
        "\x1b[31mValueError\x1b[39m   Traceback (most recent call last)",
        "\x1b[36mCell\x1b[39m\x1b[36m \x1b[39m\x1b[32mIn[4]\x1b[39m\x1b[32m, line 2\x1b[39m\n----> 2 fit()\n",
        "\x1b[36mFile \x1b[39m\x1b[32m/srv/venv/lib/python3.11/site-packages/keras/src/utils/traceback_utils.py"
        ":122\x1b[39m"
        ", in error_handler\n    raise e\n",
        "File /srv/venv/lib/python3.11/site-packages/tensorflow/python/eager/polymorphic_function.py:833, in call\n",
        "File /tmp/ipykernel_1/53590950.py:6, in my_step(x)\n----> 6 return x / 0\n",
        "File ~/miniconda3/lib/python3.11/functools.py:909, in wrapper\n",
        "\nDuring handling of the above exception, another exception occurred:\n",
        "File <frozen runpy>:88, in _run_code\n",
        "\x1b[31mValueError\x1b[39m: bad value in /home/grader/course/data.npz",
    ]
    text = _plain(trim_traceback(lines))
    assert "Cell In[4], line 2" in text and "----> 2 fit()" in text
    assert "… 2 frames inside keras and tensorflow (not shown)" in text
    assert "File 53590950.py:6, in my_step(x)" in text and "return x / 0" in text  # a cell's function
    assert "… 1 frame inside functools (not shown)" in text
    assert "During handling of the above exception" in text
    assert "… 1 frame inside other code (not shown)" in text
    assert text.endswith("ValueError: bad value in data.npz")
    assert not ENVIRONMENT.search(text) and "miniconda" not in text


@pytest.mark.parametrize(("text", "expected"), [
    ("/tmp/ipykernel_1/53590950.py:6: UserWarning: fixed", "53590950.py:6: UserWarning: fixed"),
    ("open('/work/course/.venv/lib/x.txt')", "open('x.txt')"),
    ("see /home/ann/notes/ and ~/secret/key.pem", "see notes and key.pem"),
    ("[Errno 2] No such file: '/root/a b/c'", "[Errno 2] No such file: 'a b/c'"),  # a space ends a path
    ("loss (1 + 0 + 4 + 16) / 4 = 20/4 km/h", "loss (1 + 0 + 4 + 16) / 4 = 20/4 km/h"),
    ("https://www.tensorflow.org/api_docs/python/tf", "https://www.tensorflow.org/api_docs/python/tf"),
    ("a lone /usr is no path", "a lone /usr is no path"),
])
def test_scrub_paths(text: str, expected: str) -> None:
    assert scrub_paths(text) == expected


def test_the_preprocessor_trims_errors_and_scrubs_streams_and_values_in_every_cell() -> None:
    warning = next(entry for entry in DATA if entry["output"]["output_type"] == "stream")["output"]
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_code_cell("model = Model()", outputs=[nbformat.from_dict(copy.deepcopy(warning))]),
        nbformat.v4.new_code_cell("train_loop()", outputs=[nbformat.from_dict(copy.deepcopy(ERRORS[1]["output"]))]),
        nbformat.v4.new_code_cell("tf.__file__", outputs=[nbformat.v4.new_output(
            "execute_result",
            data={"text/plain": "'/work/c/.venv/lib/python3.11/site-packages/tensorflow/__init__.py'"},
            execution_count=3)]),
        nbformat.v4.new_markdown_cell("Paths in the instructor's text stay: /usr/share/doc"),
    ]
    nb, _ = TrimTracebacks().preprocess(nb, {})
    page = json.dumps(nb)
    assert not ENVIRONMENT.search(ANSI.sub("", nb.cells[0].outputs[0].text + _plain(nb.cells[1].outputs[0].traceback)
                                           + nb.cells[2].outputs[0].data["text/plain"]))
    assert "53590950.py:6: UserWarning" in nb.cells[0].outputs[0].text
    assert nb.cells[2].outputs[0].data["text/plain"] == "'__init__.py'"
    assert "/usr/share/doc" in page  # markdown is not output: untouched
    assert nb.cells[1].outputs[0].ename == "AttributeError"
