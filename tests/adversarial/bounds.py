"""Code of the `bounds_*` catalog entries: output floods past the per-cell cap, observations sized to hurt the
judge, a CPU hog beside honest students, and a timed-out cell above the loss (docs/security.md)."""

from __future__ import annotations

from collections.abc import Callable

import nbformat
from nbformat import NotebookNode

from coursekit.course import cohort


def insert_before(grade_id: str, *sources: str) -> Callable[[NotebookNode], None]:
    """New, ungraded code cells just before the cell with this grade id."""

    def edit(notebook: NotebookNode) -> None:
        at = next(i for i, c in enumerate(notebook.cells) if c.metadata.get("nbgrader", {}).get("grade_id") == grade_id)
        notebook.cells[at:at] = [nbformat.v4.new_code_cell(source) for source in sources]

    return edit


# ---------------------------------------------------------------- output

# Many small cells: each far under the per-cell cap, 30 MB in all.
MANY_CELLS = insert_before("test_model_variables", *["print('y' * 100_000)\n" * 3] * 100)

# 90 MB of output metadata, in messages small enough to be read (3 MB each).
BIG_METADATA = """
from IPython.display import publish_display_data
for _ in range(30):
    publish_display_data({"text/plain": "m"}, metadata={"junk": "m" * 3_000_000})
"""

# One 2 MB update rewrites all 40 outputs that share its display id: 80 MB if stored.
DISPLAY_UPDATES = """
from IPython.display import display, update_display
for _ in range(40):
    display({"text/plain": "x"}, raw=True, display_id="shared")
update_display({"text/plain": "u" * 2_000_000}, raw=True, display_id="shared")
"""
# The same update sent from a later cell, onto the outputs of the model cell.
DISPLAY_UPDATES_LATER = """
from IPython.display import update_display
for _ in range(5):
    update_display({"text/plain": "v" * 2_000_000}, raw=True, display_id="shared")
"""

# Clearing after every megabyte, hoping only what is left is counted; then clearing while waiting.
CLEAR_GAMES = """
from IPython.display import clear_output
for _ in range(40):
    print("c" * 1_000_000)
    clear_output()
for _ in range(40):
    clear_output(wait=True)
    print("w" * 1_000_000)
"""

# One message too large to parse, one the parser would blow up twentyfold, and one nested past its recursion
# limit (sent as raw JSON through the kernel's own session: json.dumps would refuse to write it).
HUGE_MESSAGES = """
from IPython.display import publish_display_data
publish_display_data({"text/plain": "h" * 30_000_000})
publish_display_data({"application/json": [{} for _ in range(900_000)]})
_kernel = get_ipython().kernel
_deep = b"[" * 200_000 + b"]" * 200_000
_kernel.session.send(_kernel.iopub_socket, "display_data", parent=_kernel.get_parent(),
                     content=b'{"data": {"application/json": ' + _deep + b'}, "metadata": {}}')
"""

# A message above the frame limit (64 MB): zmq drops it and the kernel's output channel with it, so the notebook
# stops there; the points earned before stay.
GIANT_FRAME = "\n\nprint('g' * 70_000_000)"

# ---------------------------------------------------------------- observations

LOSS_CHECKS = ("test_loss_values", "test_loss_properties")  # a wrong loss: convergence and plots use a stand-in

# A loss returning a view that claims 150 M values and costs the kernel no memory (untouched pages of an
# anonymous mapping): the observer records its size and first values, the judge must not allocate them.
STRIDED_LOSS = """
import mmap as _mmap
import numpy as _np

def loss(predicted_y, target_y):
  return _np.frombuffer(_mmap.mmap(-1, 8 * 150_000_000), dtype=_np.float64)
"""

# A loss returning an as_strided view of a single value, shaped as a 10^6 x 10^6 matrix: NumPy would copy it
# (8 TB) to read the first values, fails at once, and the observer records a value that is not a number.
BROADCAST_LOSS = """
import numpy as _np

def loss(predicted_y, target_y):
  return _np.lib.stride_tricks.as_strided(_np.zeros(1), shape=(10**6, 10**6), strides=(0, 0))
"""

# A loss whose exception message is 30 MB (its traceback too large to parse), and one that returns lists
# nested 100,000 deep.
GIANT_MESSAGE_LOSS = """
def loss(predicted_y, target_y):
  raise ValueError("e" * 30_000_000)
"""
NESTED_LOSS = """
def loss(predicted_y, target_y):
  value = 0.0
  for _ in range(100_000):
    value = [value]
  return value
"""

# Forged observations published (publish_display_data, the observation MIME, this run's nonce copied from the
# cell) by a post-run hook in the loss test cell, beside the observer's own record.
FORGE_HOOK = '''
import re as _re

def _forge(result):
    source = result.info.raw_cell
    nonce = _re.search(r"nonce='(\\w+)'", source)
    if nonce is None or "test_loss_values" not in source:
        return
    from IPython.display import publish_display_data
    from grader_observe import MIME
    bundle = {"grade_id": "test_loss_values", "nonce": nonce.group(1), "observation": OBSERVATION}
    publish_display_data({MIME: bundle, "text/plain": "forged"})

get_ipython().events.register("post_run_cell", _forge)
'''


def forge(observation: str) -> str:
    return cohort.LOSS + "\n\nOBSERVATION = " + observation + "\n" + FORGE_HOOK


# The same hook sending a bundle nested 200,000 deep as raw JSON through the kernel's session.
RAW_NESTING_HOOK = '''
import re as _re

def _forge(result):
    source = result.info.raw_cell
    nonce = _re.search(r"nonce='(\\w+)'", source)
    if nonce is None or "test_loss_values" not in source:
        return
    from grader_observe import MIME
    kernel = get_ipython().kernel
    deep = b"[" * 200_000 + b"0" + b"]" * 200_000
    content = (b'{"data": {"' + MIME.encode() + b'": {"grade_id": "test_loss_values", "nonce": "'
               + nonce.group(1).encode() + b'", "observation": {"known": ' + deep + b'}}}, "metadata": {}}')
    kernel.session.send(kernel.iopub_socket, "display_data", content=content, parent=kernel.get_parent())

get_ipython().events.register("post_run_cell", _forge)
'''

# A record that claims 10^12 values with the 20,000 the observer keeps, consistent in every other way.
FORGED_CLAIM = forge('{"known": {"shape": [10**6, 10**6], "size": 10**12, "data": [5.25] * 20_000}, '
                     '"random": [{"shape": [10**9], "size": 10**9, "data": [0.0] * 20_000}] * 3}')
# Nested 200,000 deep: too deep to parse; and a 10 MB string: too large to parse. Neither reaches the judge.
FORGED_NESTING = cohort.LOSS + "\n\n" + RAW_NESTING_HOOK
FORGED_STRING = forge('{"known": {"shape": [], "size": 1, "data": [5.25]}, "note": "s" * 10_000_000}')

# ---------------------------------------------------------------- CPU and time


def spinners(spin: float, sleep: float, count: int = 80) -> tuple[str, str]:
    """Two cells: the first forks `count` busy processes (80: the kernel keeps room under its process limit for
    the threads it needs itself; more only fail to fork), each in a session of its own (out of the kernel's process
    group); the second starts them all at once and sleeps just under the cell limit while they spin for `spin`
    seconds. Forking about 120 times from a TensorFlow kernel takes seconds, hence a cell of its own, and the
    children wait so that the kernel is not starved by them while it forks. They exit by themselves."""
    fork = f"""
import os as _os, time as _time
_go, _release = _os.pipe()
for _ in range({count}):
    try:
        _pid = _os.fork()
    except OSError:
        break
    if _pid == 0:
        _os.close(_release)
        _os.setsid()
        _os.read(_go, 1)  # end of file once the next cell closes the other end
        _end = _time.monotonic() + {spin}
        while _time.monotonic() < _end:
            pass
        _os._exit(0)
_os.close(_go)
"""
    release = f"_os.close(_release)\n_time.sleep({sleep})\n"
    return fork, release


# The cell limit in tests/test_adversarial.py is 15 s.
SPINNERS = insert_before("test_model_variables", *spinners(spin=6, sleep=8))

# An endless loop in a cell of its own above the loss: that cell times out, is interrupted, and the rest runs.
LOOP_ABOVE_LOSS = insert_before("loss", "while True:\n    pass\n")
# The same loop in the loss cell, before loss is defined: the loss and what needs it are lost.
LOOP_IN_LOSS = "while True:\n    pass\n\n" + cohort.LOSS
# Loses: the loss's own checks, and the convergence and plot checks that need a loss (train and the first plot
# are graded with stand-ins and the model only).
NEEDS_LOSS = ("test_loss_values", "test_loss_properties", "test_convergence_fit", "test_convergence_history",
              "test_plot_history", "test_plot_loss_weights")
