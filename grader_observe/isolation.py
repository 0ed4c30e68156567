"""Calling student code so that it is observed alone and cannot disturb the grade cell.

- `quiet` keeps whatever student code or TensorFlow prints out of the grade cell: nbgrader
  scores a test cell 0 when anything reaches its stderr, even a harmless warning.
- `rebind` gives a student function other globals (a stand-in `loss`, say), so one part is
  observed without the others: a wrong loss must not cost train points.
"""

from __future__ import annotations

import contextlib
import inspect
import io
import os
import sys
import types
from collections.abc import Callable, Iterator
from typing import Any


class StudentError(Exception):
    """Student code raised, or returned something that cannot be used at all."""

    def __init__(self, message: str, *, not_implemented: bool = False) -> None:
        super().__init__(message)
        self.not_implemented = not_implemented


@contextlib.contextmanager
def quiet() -> Iterator[None]:
    """Silence Python-level and file-descriptor-level output (TensorFlow's C++ logs use fd 2)."""
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    saved: list[tuple[int, int]] = []
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        for fd in (1, 2):
            with contextlib.suppress(OSError):
                saved.append((fd, os.dup(fd)))
                os.dup2(devnull, fd)
        sink = io.StringIO()
        with contextlib.redirect_stdout(sink), contextlib.redirect_stderr(sink):
            yield
    finally:
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(Exception):
                stream.flush()
        for fd, copy in saved:
            os.dup2(copy, fd)
            os.close(copy)
        os.close(devnull)


def call(description: str, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """Call student code quietly; turn any exception into a message the student can act on."""
    try:
        with quiet():
            return fn(*args, **kwargs)
    except NotImplementedError as exc:
        raise StudentError(
            f"{description} raised NotImplementedError: replace `raise NotImplementedError()` "
            "with your code.",
            not_implemented=True,
        ) from exc
    except (Exception, SystemExit) as exc:  # sys.exit() in student code is the student's error too
        raise StudentError(f"{description} raised {type(exc).__name__}: {safe_str(exc)}") from exc


def safe_str(value: Any) -> str:
    """str() of a student's object, which may itself raise."""
    try:
        return str(value)[:2000]
    except BaseException:
        return f"<{type(value).__name__} that cannot be shown>"


def _python_function(fn: Any) -> types.FunctionType | None:
    """The plain function behind `fn` (unwrapping @tf.function and functools.wraps), if any."""
    fn = getattr(fn, "python_function", fn)  # tf.function keeps the original here
    fn = inspect.unwrap(fn)
    return fn if isinstance(fn, types.FunctionType) else None


def _copy_function(fn: types.FunctionType, namespace: dict[str, Any]) -> types.FunctionType:
    copy = types.FunctionType(fn.__code__, namespace, fn.__name__, fn.__defaults__, fn.__closure__)
    copy.__kwdefaults__ = fn.__kwdefaults__
    copy.__qualname__ = fn.__qualname__
    return copy


def rebind(fn: Any, **replacements: Any) -> Any:
    """Return `fn` as it would run with `replacements` in place of its globals.

    Every function defined next to `fn` (a student's helper that calls `loss`, say) is
    rebound too, so the replacement reaches all of the student's code. A callable that is
    not a Python function is returned as it is: it cannot be isolated further.
    """
    plain = _python_function(fn)
    if plain is None:
        return fn
    original = plain.__globals__
    namespace = dict(original)
    namespace.update(replacements)
    for name, value in original.items():
        if name in replacements:
            continue
        helper = _python_function(value)
        if helper is not None and helper.__globals__ is original:
            namespace[name] = _copy_function(helper, namespace)
    rebound = _copy_function(plain, namespace)
    if hasattr(fn, "python_function"):
        import tensorflow as tf

        return tf.function(rebound)
    return rebound
