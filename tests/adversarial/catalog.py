"""Hostile submissions, each with what it must earn: nothing more than its honest part, nobody else's grade.

Each entry builds a notebook from the release (or raw bytes, for broken files) and names the test cells it
must lose. Most hide a wrong part behind a trick (a patched helper, a swallowed exception, an edited test
cell), so the trick is what would earn the points; others attack the grader itself (its files, the
gradebook, the network, its processes) or run away (loops, crashes, floods), and must cost only the
checks that depend on what they broke.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import nbformat
from nbformat import NotebookNode

from coursekit.course import cohort

from . import active_content, bounds, planted
from .routes_payloads import FORGE_REPLAY, KILL_WRITER, REACH_SUBMISSIONS

ALL = ("*",)  # every test cell: the submission is graded as blank
MODEL, LOSS, TRAIN = cohort.MODEL, cohort.LOSS, cohort.TRAIN
# w starts at 4 and b at 1: loses test_model_variables
WRONG_MODEL = MODEL.replace("w = tf.Variable(1.0)", "w = tf.Variable(4.0)").replace("b = tf.Variable(4.0)",
                                                                                     "b = tf.Variable(1.0)")
WRONG_LOSS = LOSS.replace("reduce_mean", "reduce_sum")  # loses test_loss_values
WRONG_TRAIN = TRAIN.replace("learning_rate * dw", "dw").replace("learning_rate * db", "db")  # loses test_train_step
_DEMO = {student.student_id: student for student in cohort.STUDENTS}
ROOT_MEAN_LOSS = _DEMO["loss_sqrt"].loss  # the square root of the MSE: loses test_loss_values
NUMPY_LOSS = _DEMO["loss_numpy"].loss  # no gradient flows: loses test_loss_properties
AFTER_TRAIN = ("test_train_step", "test_train_state", "test_convergence_fit", "test_convergence_history",
               "test_plot_history", "test_plot_loss_weights")


@dataclass(frozen=True)
class Hostile:
    student_id: str
    story: str
    loses: tuple[str, ...]
    model: str = MODEL
    loss: str = LOSS
    train: str = TRAIN
    edit: Callable[[NotebookNode], None] | None = None  # changes the filled notebook in place
    raw: Callable[[NotebookNode], bytes | None] | None = None  # the file's bytes instead (None: no file)
    # The autograded test cells hold the judge's verdict alone: whatever the trick printed or displayed is gone.
    verdict_only: bool = False
    # Lost cells whose verdict must be the judge's refusal of a tampered cell (coursekit.steps.judge.TAMPERED).
    tampered: tuple[str, ...] = ()
    # Called with the submission folder (submitted/<id>/<assignment>) once the notebook is written: plants other
    # files, links, named pipes or a timestamp.txt beside it, or replaces the notebook or the folder itself.
    plant: Callable[[Path], None] | None = None

    def build(self, release: NotebookNode) -> bytes | None:
        notebook = cohort.fill(release, cohort.Student(self.student_id, self.story, self.model, self.loss,
                                                      self.train))
        if self.raw is not None:
            return self.raw(notebook)
        if self.edit is not None:
            self.edit(notebook)
        return nbformat.writes(notebook).encode()


def _test_cells(notebook: NotebookNode) -> list[NotebookNode]:
    return [c for c in notebook.cells if c.metadata.get("nbgrader", {}).get("grade_id", "").startswith("test_")]


def _delete_test_cells(notebook: NotebookNode) -> None:
    notebook.cells = [c for c in notebook.cells if c not in _test_cells(notebook)]


def _set_test_sources(source: str) -> Callable[[NotebookNode], None]:
    def edit(notebook: NotebookNode) -> None:
        for cell in _test_cells(notebook):
            cell.source = source
    return edit


def _points(points: float, ungraded: str = "") -> Callable[[NotebookNode], None]:
    def edit(notebook: NotebookNode) -> None:
        for cell in _test_cells(notebook):
            cell.metadata.nbgrader["points"] = points
            if cell.metadata.nbgrader["grade_id"] == ungraded:
                cell.metadata.nbgrader["grade"] = False
    return edit


def _strip_test_metadata(notebook: NotebookNode) -> None:
    for cell in _test_cells(notebook):
        del cell.metadata["nbgrader"]
        cell.source = "print('All visible tests passed for this cell.')"


def _prefix(code: str, part: str) -> str:
    return f"{code}\n\n{part}"


def _first_in_call(code: str, model: str) -> str:
    return model.replace("  def __call__(self, x):\n", f"  def __call__(self, x):\n{code}\n")


def _indent(code: str) -> str:
    return "\n".join("  " + line if line.strip() else line for line in code.splitlines())


def _first_in_train(code: str) -> str:
    return TRAIN.replace("  with tf.GradientTape", f"{code}\n  with tf.GradientTape")


def _padded(notebook: NotebookNode) -> bytes:
    notebook.cells.append(nbformat.v4.new_markdown_cell("x" * (25 * 2**20), id="padding"))
    return nbformat.writes(notebook).encode()


def _other_assignment(_: NotebookNode) -> bytes:
    cell = nbformat.v4.new_code_cell("print('week 2')", id="week-2")  # a fixed id: the same bytes every build
    return nbformat.writes(nbformat.v4.new_notebook(cells=[cell])).encode()


FAKE_PASS = '''print("Hidden tests passed:")
print("  ✓ Model() starts at w=1.0 and b=4.0")
print("All visible tests passed for this cell.")'''

FORGE = '''
def _forge():
    from IPython.display import publish_display_data
    fake = {"passed": True, "points": 1000, "grade_id": "test_model_variables", "w": 1.0, "b": 4.0}
    for mime in ("application/vnd.coursekit.observation+json", "application/json", "text/plain"):
        publish_display_data({mime: fake if mime.endswith("json") else "Hidden tests passed"})
'''

# Every comparison a check could lean on, patched at once in the loss cell.
PATCH_HELPERS = '''
import builtins, math, numpy, numpy.testing
numpy.allclose = lambda *a, **k: True
numpy.isclose = lambda *a, **k: True
numpy.array_equal = lambda *a, **k: True
numpy.testing.assert_allclose = lambda *a, **k: None
numpy.testing.assert_array_almost_equal = lambda *a, **k: None
math.isclose = lambda *a, **k: True
math.isfinite = lambda *a, **k: True
tf.debugging.assert_near = lambda *a, **k: None
tf.debugging.assert_equal = lambda *a, **k: None
builtins.round = lambda *a, **k: 0
'''

# A NumPy loss blocks gradients (it loses test_loss_properties); this patch makes every missing gradient a zero,
# so an observer that called the patched method would see gradients flow. Training itself is unchanged.
PATCH_GRADIENT = '''
_real_gradient = tf.GradientTape.gradient
def _always_a_gradient(self, target, sources, *args, **kwargs):
    grads = _real_gradient(self, target, sources, *args, **kwargs)
    if isinstance(grads, (list, tuple)):
        return [tf.zeros_like(s) if g is None else g for g, s in zip(grads, sources)]
    return tf.zeros_like(sources) if grads is None else grads
tf.GradientTape.gradient = _always_a_gradient
'''

SWALLOW_AND_PRINT = '''
_ip = get_ipython()
_ip.set_custom_exc((BaseException,), lambda shell, etype, evalue, tb, tb_offset=None: print("Hidden tests passed:"))
_ip.showtraceback = lambda *a, **k: print("Hidden tests passed:")
_ip._showtraceback = lambda *a, **k: None
'''

FAKE_PASS_HOOK = '''
_real_loss = loss
def loss(predicted_y, target_y):
  print("Hidden tests passed:\\n  ✓ loss([1, 2, 3, 4], [2, 2, 5, 0]) == 5.25")
  return _real_loss(predicted_y, target_y)

get_ipython().events.register("post_run_cell", lambda result: print("Hidden tests passed:\\n  ✓ all of them"))
'''

# A forger that knows the observer's inputs and the bundle's format, and copies this run's nonce from the cell's
# own source after it ran: the cell then holds two records, and earns nothing.
NONCE_FORGE = '''
import re as _re
import numpy as _np
from IPython.display import display as _display

def _forge(result):
    source = result.info.raw_cell
    nonce = _re.search(r"nonce='(\\w+)'", source)
    if nonce is None or "test_loss_values" not in source:
        return
    from grader_observe import MIME, inputs
    def mse(p, t):
        value = float(_np.mean(_np.square(p.astype(_np.float64) - t.astype(_np.float64))))
        return {"shape": [], "size": 1, "data": [value]}
    observation = {"known": mse(*inputs.LOSS_KNOWN), "random": [mse(p, t) for _, p, t in inputs.loss_random()]}
    bundle = {"grade_id": "test_loss_values", "nonce": nonce.group(1), "observation": observation}
    _display({MIME: bundle, "text/plain": "forged"}, raw=True)

get_ipython().events.register("post_run_cell", _forge)
'''
# The same forger, clearing the cell's output first so that its record is the only one.
CLEAR_AND_NONCE_FORGE = NONCE_FORGE.replace(
    "    _display({MIME: bundle",
    "    from IPython.display import clear_output\n    clear_output()\n    _display({MIME: bundle",
)

PATCH_CHECKS = '''
try:
    import grader_tests.checks as _checks
    import grader_tests.reference as _reference
    _checks.judge = lambda grade_id, observation: _checks.Result("passed", True, "forged")
    _checks.CHECKS.clear()
    IMPORTED_REFERENCE = True
except ImportError:
    IMPORTED_REFERENCE = False
'''

READ_SECRETS = '''import glob, os
_found = []
for _pattern in ("/work/**/reference.py", "../../../grader_tests/*.py", "../../../source/**/*.ipynb",
                 "../../../gradebook.db", "/proc/1/root/work/*/grader_tests/reference.py"):
    for _path in glob.glob(_pattern, recursive=True):
        try:
            _found.append(open(_path, "rb").read())
        except OSError:
            pass
for _text in _found:
    if b"def loss" in _text:
        _namespace = {}
        try:
            exec(_text.decode(errors="replace"), _namespace)
            loss = _namespace.get("loss", loss)
        except Exception:
            pass'''

WRITE_GRADEBOOK = '''import glob, sqlite3
_paths = glob.glob("/work/*/gradebook.db") + glob.glob("/tmp/*/*/gradebook.db") + glob.glob("../../../*.db")
for _path in set(_paths + glob.glob("../*.db") + glob.glob("/root/**/gradebook.db", recursive=True)):
    try:
        _db = sqlite3.connect(_path)
        _db.execute("UPDATE grade SET auto_score = 5000, manual_score = 5000")
        _db.execute("UPDATE grade_cells SET max_score = 5000")
        _db.commit()
    except Exception:
        pass
    try:
        open(_path, "wb").write(b"corrupt")
    except Exception:
        pass'''

NETWORK = '''import socket
_reached = []
for _port in (22, 80, 5432, 8786, 8888):
    try:
        socket.create_connection(("127.0.0.1", _port), timeout=1).close()
        _reached.append(_port)
    except OSError:
        pass
print("reached", _reached)'''

KILL_GRADER = '''import os, signal
for _target in (os.getppid(), 1):
    try:
        os.kill(_target, signal.SIGKILL)
    except OSError:
        pass
try:
    os.killpg(os.getpgid(os.getppid()), signal.SIGKILL)
except OSError:
    pass'''

FORK_MANY = '''import os, time
for _ in range(300):
    try:
        if os.fork() == 0:
            time.sleep(20)
            os._exit(0)
    except OSError:
        break'''



# ---- kernels: the code the block of entries at the end of CATALOG runs
# The kernel's socket folder: from its connection file ("ip"), else from its mounts.
SOCKET_FOLDER = """
import json as _json, os as _os
def _socket_folder():
    try:
        from ipykernel.kernelapp import IPKernelApp
        with open(IPKernelApp.instance().connection_file) as _file:
            return _os.path.dirname(_json.load(_file)["ip"])
    except Exception:
        for _line in open('/proc/self/mountinfo'):
            if '/sockets/' in _line.split()[4]:
                return _line.split()[4]
"""


def _plant_ended(*targets: str) -> str:
    """`ended` in the kernel's socket folder, a link to a grader file (relative to the kernel's working folder)."""
    return SOCKET_FOLDER + f"""
for _target in {targets!r}:
    try:
        _link = _os.path.join(_socket_folder(), 'ended')
        if _os.path.lexists(_link):
            _os.unlink(_link)
        _os.symlink(_os.path.abspath(_target), _link)
    except Exception as _exc:
        print('ended:', type(_exc).__name__)
"""


SOURCE_NOTEBOOK = "../../../source/custom_training_basics/custom_training_basics.ipynb"
SWAP_SOCKETS = SOCKET_FOLDER + """
import glob as _glob
_folder = _socket_folder()
for _path in _glob.glob(_os.path.join(_folder, 'kernel-*')):
    try:
        _os.rename(_path, _path + '.mine')
        _os.symlink(_os.path.join(_folder, '..', '..', 'fork.sock'), _path)
    except Exception as _exc:
        print('swap:', type(_exc).__name__)
try:
    from ipykernel.kernelapp import IPKernelApp
    _connection = IPKernelApp.instance().connection_file
    _info = _json.load(open(_connection))
    _info['ip'] = _os.path.join(_folder, '..', '..', 'fork.sock')
    _json.dump(_info, open(_connection, 'w'))
except Exception as _exc:
    print('connection file:', type(_exc).__name__)
"""
PRINT_ENVIRON = """
import os as _os
print(dict(_os.environ))
"""
PRINT_PROC_ENVIRON = """
import os as _os
for _pid in ('self', '1', str(_os.getppid())):
    try:
        print(_pid, open(f'/proc/{_pid}/environ', 'rb').read().replace(b'\\0', b'\\n').decode(errors='replace'))
    except OSError as _exc:
        print(_pid, type(_exc).__name__)
"""
# The environment the kernel was started with lies on its stack; what the warm parent was sent, on its heap.
SCAN_OWN_MEMORY = """
_found = []
with open('/proc/self/maps') as _maps, open('/proc/self/mem', 'rb') as _mem:
    for _line in _maps:
        if _line.rstrip().endswith(('[stack]', '[heap]')):
            _start, _end = (int(_x, 16) for _x in _line.split()[0].split('-'))
            for _offset in range(_start, _end, 1 << 24):  # 16 MiB at a time, overlapping: the memory limit holds
                _mem.seek(_offset)
                _chunk = _mem.read(min((1 << 24) + 256, _end - _offset))
                for _needle in (b'PASSWORD=', b'SECRET_ACCESS_KEY=', b'postgresql://'):
                    _at = _chunk.find(_needle)
                    while _at >= 0 and len(_found) < 40:
                        _found.append(_chunk[_at:_at + 120].decode(errors='replace'))
                        _at = _chunk.find(_needle, _at + 1)
print(_found)
"""
# Sleepers named after the kernel's working folder (the run's own scratch course): tests look for them by name.
DAEMONS = """
import os as _os, subprocess as _subprocess, sys as _sys
_name = 'coursekit-daemon:' + _os.getcwd()
_subprocess.Popen([_sys.executable, '-c', 'import time; time.sleep(3600)', _name], start_new_session=True)
if _os.fork() == 0:
    _os.setsid()
    if _os.fork() == 0:
        _os.execv(_sys.executable, [_sys.executable, '-c', 'import time; time.sleep(3600)', _name])
    _os._exit(0)
_os.wait()
try:
    import ctypes as _ctypes
    _ctypes.CDLL(None).prctl(1, 0, 0, 0, 0)  # the kernel's own parent-death signal, cleared
except Exception:
    pass
"""


def _hide_train_loop(notebook: NotebookNode) -> None:
    """Deletes the test cells of the train part only: they come back and grade the wrong train."""
    notebook.cells = [c for c in notebook.cells
                      if c.metadata.get("nbgrader", {}).get("grade_id") not in ("test_train_step", "test_train_state")]


CATALOG: tuple[Hostile, ...] = (
    # ---- editing the test cells and their metadata
    Hostile("tamper_delete_tests", "correct work with every test cell deleted", loses=(), edit=_delete_test_cells),
    Hostile("tamper_delete_train_tests", "wrong train, its test cells deleted", loses=("test_train_step",),
            train=WRONG_TRAIN, edit=_hide_train_loop),
    Hostile("tamper_blank_tests", "root-mean loss with every test cell blanked", loses=("test_loss_values",),
            loss=ROOT_MEAN_LOSS, edit=_set_test_sources("")),
    Hostile("tamper_pass_tests", "wrong model, test cells replaced by a print", loses=("test_model_variables",),
            model=WRONG_MODEL, edit=_set_test_sources("print('All visible tests passed for this cell.')")),
    Hostile("tamper_points", "correct work, every test cell worth 1000 points", loses=(), edit=_points(1000)),
    Hostile("tamper_points_wrong_loss", "wrong loss, every test cell worth 1000 points, the loss's marked not graded",
            loses=("test_loss_values",), loss=WRONG_LOSS, edit=_points(1000, ungraded="test_loss_values")),
    Hostile("tamper_strip_metadata", "wrong model, test cells' nbgrader metadata removed and replaced by prints",
            loses=("test_model_variables",), model=WRONG_MODEL, edit=_strip_test_metadata),
    # ---- fooling the checks from inside the kernel
    Hostile("patch_allclose", "wrong model; np.allclose and np.isclose always true", loses=("test_model_variables",),
            model=_prefix("import numpy as np\nnp.allclose = lambda *a, **k: True\n"
                          "np.isclose = lambda *a, **k: True", WRONG_MODEL)),
    Hostile("patch_numpy_testing", "wrong loss; numpy.testing's asserts do nothing", loses=("test_loss_values",),
            loss=_prefix("import numpy.testing\nfor _name in dir(numpy.testing):\n"
                         "    if _name.startswith('assert'):\n"
                         "        setattr(numpy.testing, _name, lambda *a, **k: None)", WRONG_LOSS)),
    Hostile("patch_math_isclose", "wrong train; math.isclose always true", loses=("test_train_step",),
            train=_prefix("import math\nmath.isclose = lambda *a, **k: True", WRONG_TRAIN)),
    Hostile("patch_tf_debugging", "wrong model; tf.debugging's asserts do nothing", loses=("test_model_variables",),
            model=_prefix("for _name in dir(tf.debugging):\n    if _name.startswith('assert'):\n"
                          "        setattr(tf.debugging, _name, lambda *a, **k: None)", WRONG_MODEL)),
    # Only builtins TensorFlow itself does not lean on: patching all() or any() breaks the student's own train.
    Hostile("patch_builtins", "wrong loss; builtins round and print patched", loses=("test_loss_values",),
            loss=_prefix("import builtins\nbuiltins.round = lambda *a: 0\n"
                         "builtins.print = lambda *a, **k: None", WRONG_LOSS)),
    Hostile("patch_every_helper", "root-mean loss; numpy's, math's and tf.debugging's comparisons and round patched",
            loses=("test_loss_values",), loss=ROOT_MEAN_LOSS + "\n" + PATCH_HELPERS),
    Hostile("patch_gradient", "NumPy loss; tf.GradientTape.gradient turns missing gradients into zeros",
            loses=("test_loss_properties",), loss=NUMPY_LOSS + "\n" + PATCH_GRADIENT),
    Hostile("patch_assertionerror", "wrong model; AssertionError made harmless", loses=("test_model_variables",),
            model=_prefix("import builtins\nclass _Quiet(Exception):\n    pass\nbuiltins.AssertionError = _Quiet",
                          WRONG_MODEL)),
    Hostile("swallow_custom_exc", "wrong model; IPython's set_custom_exc swallows every exception",
            loses=("test_model_variables",),
            model=_prefix("get_ipython().set_custom_exc((BaseException,), lambda *a, **k: None)", WRONG_MODEL)),
    Hostile("swallow_showtraceback", "wrong train; showtraceback overridden", loses=("test_train_step",),
            train=_prefix("_ip = get_ipython()\n_ip.showtraceback = lambda *a, **k: None\n"
                          "_ip._showtraceback = lambda *a, **k: None", WRONG_TRAIN)),
    Hostile("swallow_and_print", "root-mean loss; every exception and traceback prints that the hidden tests passed",
            loses=("test_loss_values",), loss=ROOT_MEAN_LOSS + "\n" + SWALLOW_AND_PRINT, verdict_only=True),
    Hostile("fake_pass_output", "wrong model whose __call__ prints that the hidden tests passed",
            loses=("test_model_variables",),
            model=WRONG_MODEL.replace("  def __call__(self, x):\n",
                                      "  def __call__(self, x):\n" + "\n".join(
                                          "    " + line for line in FAKE_PASS.splitlines()) + "\n")),
    Hostile("fake_pass_hook", "root-mean loss that prints a pass, and a post-run hook that prints one after every cell",
            loses=("test_loss_values",), loss=ROOT_MEAN_LOSS + "\n" + FAKE_PASS_HOOK, verdict_only=True),
    Hostile("forge_observation", "wrong model whose __call__ publishes fake results as display data",
            loses=("test_model_variables",),
            model=FORGE + _first_in_call("    _forge()", WRONG_MODEL)),
    Hostile("forge_with_nonce", "root-mean loss; a post-run hook copies the nonce from the cell and displays a "
            "correct loss's observation", loses=("test_loss_values",), loss=ROOT_MEAN_LOSS + "\n" + NONCE_FORGE,
            verdict_only=True, tampered=("test_loss_values",)),
    Hostile("forge_after_clearing", "the same hook, clearing the cell's output before it displays the forgery",
            loses=("test_loss_values",), loss=ROOT_MEAN_LOSS + "\n" + CLEAR_AND_NONCE_FORGE,
            verdict_only=True, tampered=("test_loss_values",)),
    Hostile("silence_stdout", "wrong model; stdout and stderr sent to /dev/null", loses=("test_model_variables",),
            model=_prefix("import os, sys\nsys.stdout = open(os.devnull, 'w')\nsys.stderr = sys.stdout", WRONG_MODEL)),
    # ---- reaching for what the grader keeps
    Hostile("read_solutions", "wrong loss that looks for the reference, the source and the gradebook on disk",
            loses=("test_loss_values",), loss=WRONG_LOSS + "\n\n" + READ_SECRETS),
    Hostile("import_reference", "imports the checks' reference loss, falling back to a wrong one",
            loses=("test_loss_values",),
            loss="try:\n    from grader_tests.reference import loss\nexcept Exception:\n"
                 + "\n".join("    " + line for line in WRONG_LOSS.splitlines())),
    Hostile("patch_checks", "root-mean loss; imports the checks and makes every one pass",
            loses=("test_loss_values",), loss=ROOT_MEAN_LOSS + "\n" + PATCH_CHECKS),
    Hostile("write_gradebook", "correct work that rewrites and corrupts every gradebook.db it finds", loses=(),
            train=TRAIN + "\n\n" + WRITE_GRADEBOOK),
    Hostile("network", "correct work that tries the network", loses=(), model=MODEL + "\n\n" + NETWORK),
    Hostile("kill_grader", "correct work that kills its parent, init and its parent's process group", loses=(),
            loss=LOSS + "\n\n" + KILL_GRADER),
    # The storm reaches the kernel's process limit (128 tasks, threads included) and its children are never
    # reaped: from then on the kernel cannot start a thread, which showing a figure needs (docs/security.md).
    Hostile("fork_many", "correct work that forks 300 sleeping children",
            loses=("test_plot_data", "test_plot_history", "test_plot_loss_weights"), loss=LOSS + "\n\n" + FORK_MANY),
    # ---- runaway code
    Hostile("loop_forever", "an endless loop before train is defined", loses=AFTER_TRAIN,
            train="while True:\n    pass\n\n" + TRAIN),
    Hostile("hang_in_train", "train sleeps forever when called", loses=AFTER_TRAIN,
            train=_first_in_train("  import time\n  time.sleep(10**6)")),
    Hostile("exit_in_train", "train kills its own kernel with os._exit", loses=AFTER_TRAIN,
            train=_first_in_train("  import os\n  os._exit(3)")),
    # The kernel dies in the loss cell: the model's points stand, everything from the loss on is lost.
    Hostile("memory_hog", "the loss cell grabs 6 GiB",
            loses=("test_loss_values", "test_loss_properties", "test_plot_data", *AFTER_TRAIN),
            loss=LOSS + "\n\n_hog = [bytearray(2**30) for _ in range(6)]"),
    Hostile("output_flood", "correct work that prints 60 MB", loses=(),
            model=MODEL + "\n\nfor _ in range(600):\n    print('x' * 100_000)"),
    # ---- files nbgrader cannot grade
    Hostile("file_missing", "no notebook in the submission", loses=ALL, raw=lambda _: None),
    Hostile("file_empty", "an empty file", loses=ALL, raw=lambda _: b""),
    Hostile("file_not_json", "a truncated notebook", loses=ALL, raw=lambda nb: nbformat.writes(nb).encode()[:5000]),
    Hostile("file_latin1", "a notebook saved as Latin-1", loses=ALL,
            raw=lambda nb: json.dumps(nb).replace("Model", "Mod\\u00e8le").encode().replace(b"\\u00e8", b"\xe8")),
    Hostile("file_other_assignment", "another assignment's notebook", loses=ALL, raw=_other_assignment),
    Hostile("file_huge", "a 25 MiB notebook", loses=ALL, raw=_padded),
    # ---- routes: student code outside the sandbox (issue 10, finding 1); each must only lose its own mistake
    Hostile("routes_reach_submissions", "wrong loss; overwrites every other submission and autograded notebook "
            "it can find", loses=("test_loss_values",), loss=WRONG_LOSS + "\n\n" + REACH_SUBMISSIONS),
    Hostile("routes_forge_replay", "wrong train; a forked forger rewrites the workers' executions waiting for the "
            "gradebook writer to show passes", loses=("test_train_step",), train=WRONG_TRAIN + "\n\n" + FORGE_REPLAY),
    Hostile("routes_kill_writer", "correct work that kills every coursekit and nbgrader process it can see",
            loses=(), model=MODEL + "\n\n" + KILL_WRITER),
    # ---- kernels: paths a kernel can write, the grader's environment, processes that outlive their kernel
    Hostile("ended_to_source", "correct model and loss; a link named `ended` to the source notebook in its socket "
            "folder, then train kills its kernel", loses=AFTER_TRAIN,
            train=_first_in_train(_indent(_plant_ended(SOURCE_NOTEBOOK) + "\nimport os\nos._exit(3)"))),
    Hostile("ended_to_gradebook", "correct model and loss; links named `ended` to the gradebook and the source, "
            "then a 6 GiB allocation in train", loses=AFTER_TRAIN,
            model=MODEL + "\n" + _plant_ended("../../../gradebook.db", SOURCE_NOTEBOOK),
            train=_first_in_train("  _hog = [bytearray(2**30) for _ in range(6)]")),
    Hostile("swap_sockets", "correct work that replaces its sockets and connection file with links to the warm "
            "parent's socket", loses=(), model=MODEL + "\n" + SWAP_SOCKETS),
    Hostile("print_environ", "correct work that prints its environment", loses=(), model=MODEL + "\n" + PRINT_ENVIRON),
    Hostile("print_proc_environ", "correct work that prints /proc/self, /proc/1 and its parent's environ", loses=(),
            loss=LOSS + "\n" + PRINT_PROC_ENVIRON),
    Hostile("scan_own_memory", "correct work that searches its own stack and heap for passwords and keys", loses=(),
            train=TRAIN + "\n" + SCAN_OWN_MEMORY),
    Hostile("background_daemons", "correct work that starts a setsid'd sleeper and a double-forked daemon, and clears "
            "its parent-death signal", loses=(), loss=LOSS + "\n" + DAEMONS),
    # ---- bounds: output past the per-cell cap, observations sized to hurt the judge, CPU, timed-out cells
    Hostile("bounds_many_cells", "correct work and 100 extra cells of 300 kB output each", loses=(),
            edit=bounds.MANY_CELLS),
    Hostile("bounds_big_metadata", "correct work and 90 MB of output metadata", loses=(),
            model=MODEL + "\n\n" + bounds.BIG_METADATA),
    Hostile("bounds_display_updates", "correct work; a 2 MB update of 40 outputs sharing a display id, and "
            "updates of them from a later cell", loses=(), model=MODEL + "\n\n" + bounds.DISPLAY_UPDATES,
            loss=LOSS + "\n\n" + bounds.DISPLAY_UPDATES_LATER),
    Hostile("bounds_clear_games", "correct work that prints 80 MB, clearing after every megabyte", loses=(),
            model=MODEL + "\n\n" + bounds.CLEAR_GAMES),
    Hostile("bounds_huge_messages", "correct work; messages too large, too many-valued or too deep to parse",
            loses=(), model=MODEL + "\n\n" + bounds.HUGE_MESSAGES),
    Hostile("bounds_strided_loss", "a loss returning a view that claims 150 M values", loses=bounds.LOSS_CHECKS,
            loss=bounds.STRIDED_LOSS),
    Hostile("bounds_broadcast_loss", "a loss returning an as_strided 10^6 x 10^6 view of one value",
            loses=bounds.LOSS_CHECKS, loss=bounds.BROADCAST_LOSS),
    Hostile("bounds_giant_frame", "correct work; the train cell prints 70 MB in one message", loses=AFTER_TRAIN,
            train=TRAIN + bounds.GIANT_FRAME),
    Hostile("bounds_giant_message_loss", "a loss raising an exception with a 30 MB message",
            loses=bounds.LOSS_CHECKS, loss=bounds.GIANT_MESSAGE_LOSS),
    Hostile("bounds_nested_loss", "a loss returning lists nested 100,000 deep", loses=bounds.LOSS_CHECKS,
            loss=bounds.NESTED_LOSS),
    Hostile("bounds_forged_claim", "correct loss; a hook publishes a record claiming 10^12 values with the nonce",
            loses=("test_loss_values",), loss=bounds.FORGED_CLAIM, verdict_only=True,
            tampered=("test_loss_values",)),
    Hostile("bounds_forged_nesting", "correct loss; a hook sends a record nested 200,000 deep with the nonce",
            loses=(), loss=bounds.FORGED_NESTING, verdict_only=True),
    Hostile("bounds_forged_string", "correct loss; a hook publishes a record holding a 10 MB string", loses=(),
            loss=bounds.FORGED_STRING, verdict_only=True),
    Hostile("bounds_cpu_spinner", "correct work; 80 busy processes in sessions of their own while its cells "
            "sleep just under the limit", loses=(), edit=bounds.SPINNERS),
    Hostile("bounds_loop_above_loss", "correct work with an endless loop in a cell of its own above the loss",
            loses=(), edit=bounds.LOOP_ABOVE_LOSS),
    Hostile("bounds_loop_in_loss", "an endless loop in the loss cell, before loss is defined",
            loses=bounds.NEEDS_LOSS, loss=bounds.LOOP_IN_LOSS),
    # ---- intake: links, pipes and devices; extra files; timestamps; surrogates; the kit's own mark; odd ids
    Hostile("intake_notebook_link_to_source", "the notebook is a symbolic link to the source (solutions)", loses=ALL,
            raw=lambda _: None, plant=planted.notebook_link(planted.to_source)),
    Hostile("intake_notebook_relative_link", "the notebook is a relative link ../../../source/...", loses=ALL,
            raw=lambda _: None, plant=planted.notebook_link(planted.to_source_relative)),
    Hostile("intake_notebook_link_to_dev_zero", "the notebook is a link to /dev/zero", loses=ALL,
            raw=lambda _: None, plant=planted.notebook_link(lambda _: "/dev/zero")),
    Hostile("intake_notebook_fifo", "the notebook is a named pipe", loses=ALL, raw=lambda _: None,
            plant=planted.notebook_fifo),
    Hostile("intake_folder_link", "the assignment folder is a link to another student's", loses=ALL,
            raw=lambda _: None, plant=planted.assignment_folder_link),
    Hostile("intake_student_link", "the student's folder is a link to another student's", loses=ALL,
            raw=lambda _: None, plant=planted.student_folder_link),
    Hostile("intake_extra_links", "honest work beside links to the gradebook, the checks, the source, /etc/passwd, /",
            loses=(), model=planted.CHECK_KERNEL_FOLDER + "\n\n" + MODEL, plant=planted.extra_links),
    Hostile("intake_extra_specials", "honest work beside links to /dev/zero and /dev/urandom, a dangling link, a FIFO",
            loses=(), model=planted.CHECK_KERNEL_FOLDER + "\n\n" + MODEL, plant=planted.extra_specials),
    Hostile("intake_extra_files", "honest work beside a matplotlib_inline.py, a data file and a subfolder",
            loses=(), model=planted.CHECK_KERNEL_FOLDER + "\n\n" + MODEL, plant=planted.extra_files),
    Hostile("intake_timestamp_not_a_date", "timestamp.txt is not a date (nbgrader: AttributeError)", loses=(),
            plant=planted.timestamp(b"not a date")),
    Hostile("intake_timestamp_overflow", "timestamp.txt overflows nbgrader's parser", loses=(),
            plant=planted.timestamp(b"99999999999999999999")),
    Hostile("intake_timestamp_binary", "timestamp.txt is binary", loses=(), plant=planted.timestamp(b"\xff\x00\xfe")),
    Hostile("intake_timestamp_link", "timestamp.txt is a link to /dev/zero", loses=(),
            plant=planted.timestamp("link")),
    Hostile("intake_timestamp_fifo", "timestamp.txt is a named pipe", loses=(), plant=planted.timestamp("fifo")),
    Hostile("intake_timestamp_valid_wrong_loss", "a valid timestamp.txt, a wrong loss", loses=("test_loss_values",),
            loss=WRONG_LOSS, plant=planted.timestamp(b"2026-11-30 12:00:00 UTC")),
    Hostile("intake_surrogate_markdown", "a markdown cell holds a lone surrogate escape (\\ud800)", loses=(),
            raw=planted.with_surrogate_markdown),
    Hostile("intake_surrogate_in_code", "a wrong loss whose comment holds a lone surrogate escape",
            loses=("test_loss_values",), loss="# caf\udce9\n" + WRONG_LOSS, raw=planted.ascii_json),
    Hostile("intake_marked_huge", "a 25 MiB notebook carrying the kit's old 'rejected' mark", loses=ALL,
            raw=lambda nb: _padded(planted.marked(nb))),
    Hostile("intake_marked_wrong_loss", "a wrong loss in a notebook carrying the kit's old 'rejected' mark",
            loses=("test_loss_values",), loss=WRONG_LOSS, edit=planted.marked),
    Hostile("intake_nbgrader_metadata_list", "a cell's nbgrader metadata is a list (nbgrader raised on it)", loses=ALL,
            edit=planted.nbgrader_metadata_list),
    Hostile(".intake_dotted", "an id with a leading dot (glob skips it): honest work", loses=()),
    Hostile("-intake_dashed", "an id with a leading dash: honest work", loses=()),
    Hostile("intake odd 'id' \"quoted\", ünïcødé 学生", "an id with spaces, quotes, a comma and unicode: wrong loss",
            loses=("test_loss_values",), loss=WRONG_LOSS),
    Hostile("=HYPERLINK(\"evil.example\";\"x\")", "a spreadsheet formula as id: honest work", loses=()),
    # ---- sanitize: student HTML and JavaScript, neutralised in the autograded notebook and the feedback
    Hostile("html_outputs", "correct work whose model cell publishes scripts on every MIME channel", loses=(),
            model=MODEL + "\n\n" + active_content.display_code("catalog")),
    Hostile("html_markdown", "correct work; scripts in added markdown and raw cells, attachments and metadata",
            loses=(), edit=active_content.add_markdown),
    Hostile("html_hook", "root-mean loss; a post-run hook displays a script after every cell",
            loses=("test_loss_values",), loss=ROOT_MEAN_LOSS + "\n\n" + active_content.HOOK_CODE, verdict_only=True),
)

# ---- refout: taking the reference parts (stand-ins) from the grading run
# Each keeps the release's stubs for the parts it does not write, and reaches for the stand-in Model, loss and
# train wherever an earlier design put them in the student's kernel: the observer's arguments, the cell's
# source before it runs (hooks, transformers), In/_ih, the garbage collector, modules and frames. Anything it
# finds becomes the notebook's Model, loss and train. The stand-ins now live only in probe children that
# observe other parts, so each must earn exactly its honest parts: nothing for a stub.
STUB_MODEL = '''class Model(object):
  def __init__(self):
    # YOUR CODE HERE
    raise NotImplementedError()

  def __call__(self, x):
    # YOUR CODE HERE
    raise NotImplementedError()

model = Model()'''
STUB_LOSS = "def loss(predicted_y, target_y):\n  # YOUR CODE HERE\n  raise NotImplementedError()"
STUB_TRAIN = "def train(model, inputs, outputs, learning_rate):\n  # YOUR CODE HERE\n  raise NotImplementedError()"
EVERY_TEST = ("test_model_variables", "test_model_output", "test_loss_values", "test_loss_properties",
              "test_plot_data", *AFTER_TRAIN)

# Adopt every definition of Model, loss or train found in source text (a string literal of a cell, or a cell).
ADOPT = '''
import ast as _ast

def _adopt_source(text, into=None):
    into = get_ipython().user_ns if into is None else into
    texts = []  # the string literals only: running the cell itself again would add a second record to it
    try:
        texts += [n.value for n in _ast.walk(_ast.parse(text)) if isinstance(n, _ast.Constant)
                  and isinstance(n.value, str) and ("def loss" in n.value or "class Model" in n.value)]
    except Exception:
        pass
    for candidate in texts:
        _adopt_text(candidate, into)

def _adopt_text(text, into=None):
    if "def loss" not in text and "class Model" not in text and "def train" not in text:
        return
    env = {"tf": tf, "__name__": "__stolen__"}
    try:
        exec(text, env)
    except BaseException:
        return
    _adopt_objects(env, into)

def _adopt_objects(found, into=None):
    into = get_ipython().user_ns if into is None else into
    for name in ("Model", "loss", "train"):
        if callable(found.get(name)) and getattr(found[name], "__module__", "") != "__main__":
            into[name] = found[name]
    if "Model" in found:
        try:
            into["model"] = into["Model"]()
        except BaseException:
            pass
'''

STEAL_BY_OBSERVER = ADOPT + '''
import grader_observe, grader_observe.kernel as _observer
_real_observe = _observer.observe

def _stealing_observe(grade_id, namespace, **injected):
    for value in injected.values():
        if isinstance(value, str):
            _adopt_text(value, namespace)
    return _real_observe(grade_id, namespace, **injected)

grader_observe.observe = _observer.observe = _stealing_observe
'''

STEAL_BY_PRE_RUN_HOOK = ADOPT + '''
get_ipython().events.register("pre_run_cell", lambda info: _adopt_source(info.raw_cell))
'''

STEAL_BY_TRANSFORMER = ADOPT + '''
def _reader(lines):
    _adopt_source("".join(lines))
    return lines

get_ipython().input_transformers_post.append(_reader)
'''

STEAL_FROM_HISTORY = ADOPT + '''
def _from_history(*_):
    for _text in list(In) + list(_ih) + list(get_ipython().history_manager.input_hist_raw):
        _adopt_source(_text)

_from_history()
get_ipython().events.register("post_run_cell", _from_history)
'''

# The garbage collector and sys.modules after every cell; while the observer runs, its frames (a stdout whose
# flush, called by the observer before each call of student code, walks up the stack).
HUNT = '''
import gc as _gc, sys as _sys, types as _types

def _lab_like(obj):
    code = getattr(getattr(obj, "__call__", None), "__code__", None) if isinstance(obj, type) else \\
        getattr(obj, "__code__", None)
    names = code.co_varnames[:code.co_argcount] if code is not None else ()
    return {("predicted_y", "target_y"): "loss", ("model", "inputs", "outputs", "learning_rate"): "train",
            ("self", "x"): "Model"}.get(tuple(names))

def _hunt_objects(objects):
    found = {}
    for obj in objects:
        try:
            name = _lab_like(obj) if isinstance(obj, (type, _types.FunctionType)) else None
            if name and getattr(obj, "__module__", "") != "__main__" and obj.__name__ == name:
                found[name] = obj
            elif isinstance(obj, dict) and {"Model", "loss"} & set(obj):
                found.update({k: v for k, v in obj.items() if k in ("Model", "loss", "train") and _lab_like(v)
                              and getattr(v, "__module__", "") != "__main__"})
            elif isinstance(obj, str) and ("def loss" in obj or "class Model" in obj) and "_hunt" not in obj:
                _adopt_text(obj)
        except BaseException:
            pass
    _adopt_objects(found)
'''

STEAL_BY_GC = ADOPT + HUNT + '''
def _hunt(*_):
    _hunt_objects(_gc.get_objects())
    _hunt_objects([vars(m) for m in list(_sys.modules.values()) if m is not None])

get_ipython().events.register("post_run_cell", _hunt)
'''

STEAL_FROM_FRAMES = ADOPT + HUNT + '''
import threading as _threading
_busy = []

def _spying(flush):
    def spy():
        if not _busy and _threading.current_thread() is _threading.main_thread():
            _busy.append(1)
            try:
                frame = _sys._getframe(1)
                while frame is not None:
                    _hunt_objects(list(frame.f_locals.values()))
                    frame = frame.f_back
            finally:
                _busy.clear()
        return flush()
    return spy

for _stream in (_sys.stdout, _sys.stderr):
    try:
        _stream.flush = _spying(_stream.flush)
    except Exception:
        pass
'''

# In the process that runs train on the stand-in Model and loss: put whatever text of theirs it finds into the
# exception message, so that the feedback would show it.
LEAK_BY_EXCEPTION = '''def train(model, inputs, outputs, learning_rate):
  import gc
  texts = []
  for obj in gc.get_objects():
    try:
      for value in (vars(obj).values() if hasattr(obj, "__dict__") else obj.values() if isinstance(obj, dict) else ()):
        if isinstance(value, str) and ("def loss" in value or "class Model" in value):
          texts.append(value)
    except Exception:
      pass
  import sys
  frame = sys._getframe()
  while frame is not None:
    texts += [v for v in frame.f_locals.values() if isinstance(v, str) and ("def loss" in v or "class Model" in v)]
    frame = frame.f_back
  raise ValueError("found: " + " ".join(texts) + repr(type(model)) + repr(train.__globals__.get("loss")))'''

CATALOG += (
    Hostile("refout_replace_observer", "stubs everywhere; grader_observe.observe replaced by one that adopts any "
            "source text the grader passes it", loses=EVERY_TEST,
            model=STEAL_BY_OBSERVER + "\n\n" + STUB_MODEL, loss=STUB_LOSS, train=STUB_TRAIN),
    Hostile("refout_pre_run_hook", "stubs everywhere; a pre_run_cell hook adopts what the cell's source holds",
            loses=EVERY_TEST, model=STEAL_BY_PRE_RUN_HOOK + "\n\n" + STUB_MODEL, loss=STUB_LOSS, train=STUB_TRAIN),
    Hostile("refout_input_transformer", "stubs everywhere; an input transformer adopts what each cell holds",
            loses=EVERY_TEST, model=STEAL_BY_TRANSFORMER + "\n\n" + STUB_MODEL, loss=STUB_LOSS, train=STUB_TRAIN),
    Hostile("refout_read_history", "stubs everywhere; In, _ih and the history read after every cell",
            loses=EVERY_TEST, model=STUB_MODEL, loss=STUB_LOSS, train=STUB_TRAIN + "\n\n" + STEAL_FROM_HISTORY),
    Hostile("refout_gc_and_modules", "correct loss, stubbed Model and train; gc and sys.modules hunted after "
            "every cell", loses=tuple(t for t in EVERY_TEST if t not in ("test_loss_values", "test_loss_properties")),
            model=STEAL_BY_GC + "\n\n" + STUB_MODEL, train=STUB_TRAIN),
    Hostile("refout_frames", "correct train, stubbed Model and loss; stdout's flush walks the observer's frames",
            loses=tuple(t for t in EVERY_TEST if t not in ("test_train_step", "test_train_state")),
            model=STEAL_FROM_FRAMES + "\n\n" + STUB_MODEL, loss=STUB_LOSS),
    # Train is wrong (it raises): convergence runs with train's stand-in and the plots are waived, as for any wrong
    # train. The stand-ins' text must not reach the feedback (tests/test_adversarial.py).
    Hostile("refout_leak_by_exception", "correct Model and loss; train raises with every stand-in text it can find",
            loses=("test_train_step", "test_train_state"), train=LEAK_BY_EXCEPTION),
)

# ---- speed: entries that let other tests share this cohort instead of grading one of their own
# Web pages a browser would run, handed in beside the notebook: none may reach autograded/ or feedback/.
PAGE_FILES = ("evil.html", ".evil.html", "EVIL.SVG", "page.xhtml")
PAGES_STUDENT = "hostile_pages"
# Regraded alone with `STUDENT=` (tests/test_adversarial.py): one submission with every trait that once made the
# single-student path differ from the cohort's, so one `coursekit grade --student` run checks them all.
ALONE_STUDENT = ".intake_alone 'odd' ünï"


def _pages(folder: Path) -> None:
    for name in PAGE_FILES:
        (folder / name).write_text(f"<script>{active_content.script('file-' + name)}</script>")


def _alone_traits(folder: Path) -> None:
    planted.extra_files(folder)
    planted.timestamp(b"not a date")(folder)


CATALOG += (
    # tests/browser/test_active_content.py opens this one in formgrader and its feedback page in Chromium.
    Hostile(PAGES_STUDENT, "correct work; every payload on every MIME channel, in markdown, raw cells and metadata, "
            "and web pages beside the notebook", loses=(),
            model=MODEL + "\n\n" + active_content.display_code() + active_content.HARMLESS_CODE,
            edit=active_content.add_markdown, plant=_pages),
    Hostile(ALONE_STUDENT, "an id with a leading dot, quotes and unicode; honest work beside a matplotlib_inline.py "
            "(it once shadowed the real one when graded alone), data and a subfolder; timestamp.txt is not a date",
            loses=(), model=planted.CHECK_KERNEL_FOLDER + "\n\n" + MODEL, plant=_alone_traits),
)
