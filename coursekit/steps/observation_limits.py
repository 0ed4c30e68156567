"""Bounds on an observation before the judge reads it: the kernel is untrusted, so is what it records.

An observation is plain JSON the kernel sends (grader_observe.kernel); a student can forge one, or make the
observer record what their objects claim (an `as_strided` view claiming 150 M values costs the kernel
nothing). The judge (grader_tests/checks.py) builds arrays of the sizes recorded, so each observation is
checked here first, walking it without building anything:

- nesting depth, number of values, items per list and length of strings are bounded;
- every numeric record (`{"shape", "size", "data"}`, grader_observe.kernel.number) is consistent: the shape
  a list of non-negative ints, `size` their product, `data` exactly the first `min(size, MAX_VALUES)`
  values, each a number or one of the strings the observer writes for non-finite ones;
- a record claiming more than `MAX_CLAIMED` values (more than any honest answer here: a 1000 x 1000
  broadcast is the largest mistake of the lab) becomes a record of a value that is not a usable number,
  saying why, so the check fails with that reason and nothing of that size is allocated.

What does not hold makes the whole observation a record of an observer error, which earns nothing.
docs/security.md ("Bounded work", bounded judging) has the measurements.
"""

from __future__ import annotations

import math
from typing import Any

MAX_OBSERVATION_BYTES = 1_000_000  # JSON of one observation bundle; honest ones are at most about 210 kB
MAX_DEPTH = 24  # honest observations nest about 10 deep
MAX_NODES = 200_000  # values in one observation; honest plot cells hold about 25,000
MAX_ITEMS = 20_000  # items of one list: the observer keeps at most this many values of an array
MAX_STRING = 4_000  # characters of one string (the observer keeps 2,000 of an exception's message)
MAX_VALUES = 20_000  # grader_observe.kernel.MAX_VALUES
MAX_CLAIMED = 1 << 20  # values a numeric record may claim: the judge allocates this many float64s
MAX_DIMS = 32  # NumPy's own limit on dimensions
NON_FINITE = frozenset({"nan", "inf", "-inf"})
NUMBER_KEYS = frozenset({"shape", "size", "data"})


class Rejected(ValueError):
    """The observation is not one the observer could have made within its bounds."""


def _claimed_size(shape: Any) -> int:
    if not isinstance(shape, list) or len(shape) > MAX_DIMS:
        raise Rejected("an array's shape is not a list of at most 32 dimensions")
    size = 1
    for n in shape:
        if type(n) is not int or n < 0:
            raise Rejected("an array's shape holds something other than non-negative integers")
        size *= n
        if size > 1 << 62:  # Python ints do not overflow: stop multiplying an absurd claim
            size = 1 << 62
    return size


def _number_record(record: dict[str, Any]) -> dict[str, Any]:
    """A consistent numeric record, or a short record of why its value cannot be judged."""
    size = _claimed_size(record["shape"])
    if type(record["size"]) is not int or record["size"] != size:
        raise Rejected("an array's size is not the product of its shape")
    data = record["data"]
    if not isinstance(data, list) or len(data) != min(size, MAX_VALUES):
        raise Rejected("an array's values do not match its size")
    for value in data:
        if type(value) is str:
            if value not in NON_FINITE:
                raise Rejected("an array holds a string that is not a number")
        elif type(value) not in (int, float) or (type(value) is float and not math.isfinite(value)):
            raise Rejected("an array holds something other than numbers")
    if size > MAX_CLAIMED:
        shape = "x".join(map(str, record["shape"]))
        return {"type": f"array of shape {shape}",
                "error": f"{size} values, more than the {MAX_CLAIMED} the grader reads"}
    return record


def checked(observation: Any) -> dict[str, Any]:
    """`observation` within the bounds above (oversized numeric records replaced), or Rejected."""
    if not isinstance(observation, dict):
        raise Rejected("the record is not a mapping")
    nodes = 0
    # (container, depth); each container is walked once, iteratively: no recursion on kernel data.
    stack: list[tuple[Any, int]] = [(observation, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise Rejected(f"the record nests deeper than {MAX_DEPTH}")
        if isinstance(node, dict):
            if node.keys() == NUMBER_KEYS:
                replaced = _number_record(node)
                if replaced is node:  # checked value by value already
                    nodes += len(node["data"])
                    if nodes > MAX_NODES:
                        raise Rejected(f"the record holds more than {MAX_NODES} values")
                    continue
                node.clear()
                node.update(replaced)
                children = list(node.items())
            else:
                for key in node:
                    if not isinstance(key, str) or len(key) > MAX_STRING:
                        raise Rejected("the record has a key that is not a short string")
                children = list(node.items())
        elif isinstance(node, list):
            if len(node) > MAX_ITEMS:
                raise Rejected(f"the record has a list of more than {MAX_ITEMS} items")
            children = list(enumerate(node))
        else:
            continue
        nodes += len(children)
        if nodes > MAX_NODES:
            raise Rejected(f"the record holds more than {MAX_NODES} values")
        for where, child in children:
            if isinstance(child, (dict, list)):
                stack.append((child, depth + 1))
            elif isinstance(child, str):
                if len(child) > MAX_STRING:  # a long message or label: its start says enough
                    node[where] = child[:MAX_STRING]
            elif child is not None and type(child) not in (int, float, bool):
                raise Rejected("the record holds something other than JSON values")
    return observation


def bounded(observation: Any) -> dict[str, Any]:
    """What the judge reads for one observation: `checked`, or a record of why it was refused."""
    try:
        return checked(observation)
    except Rejected as exc:
        return {"observer_error": f"the grader refused this record: {exc}"}
