"""Probe children: where a part is observed with the reference for the others, apart from the student's kernel.

Train is observed on a stand-in Model and loss, and the convergence checks judge a training run that mixes
the student's parts with stand-ins for the wrong ones. Those stand-ins are the reference solution: they
never enter the student's kernel, where student code could take them (a replaced observer, an IPython hook,
`In`, `gc`). They go to a probe child instead:

- forked by the warm parent (coursekit/kernels/warm_kernels.py: TensorFlow already imported), in its own session,
  confined by `sandbox.confine` with the kernels' limits and deadline, with an environment of its own;
- not a Jupyter kernel: an IPython InteractiveShell, matplotlib on Agg, every output discarded;
- it replays the student's code cells (the non-test cells above the cell being judged, as source text),
  then runs one probe (grader_observe.kernel.collect_apart) and answers with the observation as one JSON
  line. It talks only over the connection the grader opened to the warm parent (inherited by the fork):
  no file, no path a kernel could write.
- it holds the stand-ins of the other parts only: a child observing train gets the stand-in Model and
  loss; a convergence run gets the stand-ins of the parts that failed their own checks. So the part whose
  points it decides is never next to its own reference.

The grader's side (`ProbeChild`) bounds what comes back (`MAX_ANSWER` bytes, its own timeout) and redacts
every student-controlled string (`redact`): a child holds stand-ins, so an exception message could carry
their source into the student's feedback. docs/security-judging.md says what remains open.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import re
import select
import signal
import socket
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NoReturn

from coursekit.kernels import sandbox

REQUEST = "probe_child"  # the warm parent's request type (warm_kernels.serve)
MAX_REQUEST = 16 << 20  # the student's cells, as sent: bounded by the intake's 20 MiB per notebook
MAX_ANSWER = 1 << 20  # an observation of this lab is a few kB; more is refused, not parsed
# What a child's environment holds: nothing of the grader's (no credentials, no database URL).
CHILD_ENV = {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": "/tmp", "TMPDIR": "/tmp", "LANG": "C.UTF-8",
             "MPLBACKEND": "Agg", "TF_CPP_MIN_LOG_LEVEL": "2"}


class ProbeChildError(RuntimeError):
    """No probe child could be started; the message says why."""


# ---------------------------------------------------------------- in the child


def _read_line(conn: socket.socket, limit: int) -> bytes | None:
    data = bytearray()
    while not data.endswith(b"\n"):
        chunk = conn.recv(65536)
        if not chunk:
            return None
        data += chunk
        if len(data) > limit:
            return None
    return bytes(data)


@contextlib.contextmanager
def _interrupted_after(seconds: float) -> Iterator[None]:
    """KeyboardInterrupt in this (single-threaded) child after `seconds`, as nbclient interrupts a kernel's cell."""

    def interrupt(*_: object) -> None:
        raise KeyboardInterrupt

    if seconds <= 0:
        yield
        return
    previous = signal.signal(signal.SIGALRM, interrupt)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


class _Session:
    """The student's code replayed in an InteractiveShell, and the probes run on its namespace."""

    def __init__(self, stand_ins: str) -> None:
        import matplotlib

        matplotlib.use("Agg")
        from IPython.core.interactiveshell import InteractiveShell
        from traitlets.config import Config

        class Shell(InteractiveShell):  # type: ignore[misc]
            def enable_gui(self, gui: Any = None) -> None:  # `%matplotlib inline` must not fail the cell
                return None

            def showtraceback(self, exc_tuple: Any = None, *args: Any, **kwargs: Any) -> None:
                # Every output of a child is discarded, so IPython's traceback formatting (source lines,
                # syntax highlighting: 0.1-0.2 CPU-s a failing cell, and a wrong submission fails several) is
                # work for no one. sys.last_exc and friends still name the exception, as after a shown one.
                with contextlib.suppress(ValueError):
                    self._get_exc_info(exc_tuple)

        config = Config()
        config.HistoryManager.enabled = False
        self.shell = Shell.instance(config=config)
        self._stand_ins_source = stand_ins
        self._stand_ins: dict[str, Any] | None = None

    def stand_ins(self) -> dict[str, Any]:
        if self._stand_ins is None:
            from grader_observe.kernel import load_stand_ins

            self._stand_ins = load_stand_ins(self._stand_ins_source)
        return self._stand_ins

    def handle(self, request: dict[str, Any]) -> dict[str, Any]:
        from grader_observe.kernel import collect_apart

        limit = float(request.get("cell_timeout") or 0)
        for source in request.get("cells", []):
            with contextlib.suppress(BaseException), _interrupted_after(limit):
                # A failing cell is the student's: go on, as nbgrader does. A cell past the limit is interrupted
                # as the kernel's was (coursekit/kernels/runaway.py), and the replay goes on.
                self.shell.run_cell(str(source), store_history=True)
        return collect_apart(str(request.get("probe", "")), self.shell.user_ns, self.stand_ins(),
                             str(request.get("mix", "")))


def serve_child(conn: socket.socket, request: dict[str, Any], folder: Path, limits: sandbox.Limits,
                parent: int) -> NoReturn:
    """In the warm parent's forked child: confine, then answer probe requests on `conn` until it closes.

    Never returns. Any failure to confine ends the child before student code could run. `parent`: the warm
    parent, whose death ends this child, as it ends a kernel (sandbox.confine: a PID namespace of its own).
    """
    code = 1
    try:
        sandbox.die_with_parent(parent, signal.SIGTERM)
        # The warm parent reads requests with a timeout (a stalled client must not stop it); this child waits for
        # the grader's next request as long as the grader's own deadline allows.
        conn.settimeout(None)
        os.setsid()
        devnull = os.open(os.devnull, os.O_RDWR)
        for fd in (0, 1, 2):
            os.dup2(devnull, fd)
        strict = not os.environ.get(sandbox.ALLOW_ENV)
        os.environ.clear()
        os.environ.update(CHILD_ENV)
        cwd = str(request["cwd"])
        sandbox.confine(sandbox.Layout(folder / "kernels" / str(os.getpid()), cwd), limits, strict=strict)
        tempfile.tempdir = None  # the parent resolved (and cached) the grader's temp folder before the fork
        os.chdir(cwd)
        sys.path[0] = cwd  # as in a kernel started in the submission's folder
        session = _Session(str(request.get("stand_ins", "")))
        while (line := _read_line(conn, MAX_REQUEST)) is not None:
            try:
                answer = json.dumps(session.handle(json.loads(line)), allow_nan=False)
            except Exception as exc:
                answer = json.dumps({"observer_error": type(exc).__name__})
            conn.sendall(answer.encode() + b"\n")
        code = 0
    finally:
        os._exit(code)


# ---------------------------------------------------------------- in the grader

_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_.]{0,59}")
_SAFE_TEXT = re.compile(r"[\w .=()/\-]{0,60}")
_NUMBER_WORDS = {"nan", "inf", "-inf"}
_DESCRIPTION = re.compile(r"(Model\(\)|loss\([\w, ]{0,40}\)|train\([\w ,.=]{0,60}\)|train\(\.\.\.\) at epoch \d{1,3}"
                          r"|setting w=[\d.-]{1,5} and b=[\d.-]{1,5}|model\([\w .,]{0,40}\)[\w ,]{0,40})")
NOT_SHOWN = "its message is not shown: the hidden tests ran it apart from your notebook"


def _redacted_message(raised: dict[str, Any]) -> str:
    """The student error's message rebuilt from what the grader can vouch for: what was called and the type."""
    message = str(raised.get("message", ""))[:4000]
    match = re.match(r"(.{0,120}?) raised ([A-Za-z_][A-Za-z0-9_]{0,59})", message)
    described = match is not None and _DESCRIPTION.fullmatch(match.group(1)) is not None
    what = match.group(1) if match is not None and described else "your code"
    if raised.get("not_implemented"):
        return f"{what} raised NotImplementedError: replace `raise NotImplementedError()` with your code."
    kind = match.group(2) if match is not None else (_IDENTIFIER.match(message) or [""])[0].split(".")[-1]
    return f"{what} raised {kind or 'an exception'} ({NOT_SHOWN})."


def redact(value: Any, key: str = "", depth: int = 0) -> Any:
    """A child's observation with every string the student could choose bounded to a name or a number word.

    A child holds stand-ins: exception messages, type names and dict keys are where their source would
    travel to the student's feedback. Numbers pass (docs/security-judging.md: the channel left open).
    """
    if depth > 12:
        return None
    if isinstance(value, dict):
        if key == "raised" and "message" in value:
            return {"at": redact(value.get("at"), "at", depth + 1), "message": _redacted_message(value),
                    "not_implemented": bool(value.get("not_implemented"))}
        return {str(k)[:60]: redact(v, str(k), depth + 1) for k, v in list(value.items())[:200]
                if _SAFE_TEXT.fullmatch(str(k))}
    if isinstance(value, list):
        return [redact(item, key, depth + 1) for item in value]
    if isinstance(value, str):
        if value in _NUMBER_WORDS:
            return value
        if key == "type":
            return (_IDENTIFIER.match(value) or ["object"])[0]
        if key in ("error", "observer_error"):
            return f"({NOT_SHOWN})"
        return value if _SAFE_TEXT.fullmatch(value) else "(not shown)"
    if value is None or isinstance(value, (bool, int, float)):
        return value
    return None


def _socket_path() -> str:
    from coursekit.kernels.warm_kernels import SOCKET_ENV

    return os.environ.get(SOCKET_ENV, "") or _private_parent()


_PRIVATE: dict[str, Any] = {}
_PRIVATE_LOCK = threading.Lock()


def _private_parent() -> str:
    """A warm parent for probe children when this process has none (`--cold`, plain `nbgrader autograde`).

    Started once per process, stopped at exit. Its kernels would be unsandboxed anyway, so it confines its
    children as far as the machine allows instead of refusing.
    """
    from coursekit.kernels.warm_kernels import Zygote

    with _PRIVATE_LOCK:
        if "zygote" not in _PRIVATE:
            zygote = Zygote({**os.environ, sandbox.ALLOW_ENV: "1"})
            zygote.__enter__()
            _PRIVATE["zygote"] = zygote
            atexit.register(zygote.__exit__, None, None, None)
        return str(_PRIVATE["zygote"].socket_path)


class ProbeChild:
    """The grader's end of one probe child: send it cells and a probe, read back a bounded observation."""

    def __init__(self, cwd: str, stand_ins: str, timeout: float) -> None:
        self.timeout = timeout
        self._buffer = b""
        self._pidfd: int | None = None
        self.pid = 0
        self.conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            self.conn.settimeout(timeout)
            self.conn.connect(_socket_path())
            request = {REQUEST: {"cwd": cwd, "stand_ins": stand_ins}}
            self.conn.sendall(json.dumps(request).encode() + b"\n")
            line = self._line(time.monotonic() + timeout, 4096)
            self.pid = int(json.loads(line)["pid"]) if line else 0
        except (OSError, ValueError, KeyError, TypeError) as exc:
            self.close()
            raise ProbeChildError(f"no probe child: {exc}") from exc
        if not self.pid:
            self.close()
            raise ProbeChildError("no probe child: the warm parent did not fork one")
        with contextlib.suppress(OSError, AttributeError):
            self._pidfd = os.pidfd_open(self.pid)
        self.sent = self.answered = 0

    def send(self, cells: list[str], probe: str, mix: str = "") -> bool:
        """Queue one request; the child works on it while the grader goes on. False if the child is gone."""
        try:
            self.conn.settimeout(self.timeout)
            request = {"cells": cells, "probe": probe, "mix": mix, "cell_timeout": self.timeout}
            self.conn.sendall(json.dumps(request).encode() + b"\n")
        except OSError:
            self.close()
            return False
        self.sent += 1
        return True

    def receive(self, timeout: float | None = None) -> dict[str, Any]:
        """The answer to the oldest request not yet answered, within `timeout` seconds (default: the child's):
        redacted, or what went wrong, as an observation."""
        if self.answered >= self.sent:
            return {"observer_error": "nothing was asked of the probe child"}
        self.answered += 1
        try:
            line = self._line(time.monotonic() + (self.timeout if timeout is None else timeout), MAX_ANSWER)
        except TimeoutError:
            self.close()
            return {"interrupted": True}
        except OverflowError:
            self.close()
            return {"observer_error": f"the record was larger than {MAX_ANSWER} bytes"}
        except OSError:
            line = None
        if not line:
            self.close()
            return {"observer_error": "the process running your code apart from the notebook ended"}
        try:
            answer = json.loads(line, parse_constant=lambda name: name)
        except (ValueError, RecursionError):  # a record nested past the parser's depth is not readable either
            return {"observer_error": "the record was not readable"}
        return redact(answer) if isinstance(answer, dict) else {"observer_error": "the record was not readable"}

    def _line(self, deadline: float, limit: int) -> bytes | None:
        while b"\n" not in self._buffer:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError
            if not select.select([self.conn], [], [], left)[0]:
                continue
            chunk = self.conn.recv(65536)
            if not chunk:
                return None
            self._buffer += chunk
            if len(self._buffer) > limit:
                raise OverflowError
        line, _, self._buffer = self._buffer.partition(b"\n")
        if len(line) > limit:
            raise OverflowError
        return line

    def alive(self) -> bool:
        if self._pidfd is None:
            return False
        return not select.select([self._pidfd], [], [], 0)[0]

    def close(self) -> None:
        """End the child and whatever it started (its session); the warm parent reaps it and cleans up."""
        with contextlib.suppress(OSError):
            self.conn.close()
        if self._pidfd is not None:
            if self.alive():  # still this child, so its process group is still its own
                with contextlib.suppress(OSError):
                    os.killpg(self.pid, signal.SIGKILL)
                with contextlib.suppress(OSError, AttributeError):
                    signal.pidfd_send_signal(self._pidfd, signal.SIGKILL)
            os.close(self._pidfd)
            self._pidfd = None
