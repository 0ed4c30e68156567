"""Observations are bounded before the judge reads them: no record can make a grader process allocate much.

Unit tests of coursekit/steps/observation_limits.py, then the measurement docs/security.md reports: the peak memory
of a fresh grader-like process (the judge only, no TensorFlow) judging an honest notebook's observations
against the same observations with forged records (`as_strided`-style claims, huge shapes, deep nesting,
giant strings and lists). Forgeries sent through a real kernel are catalog entries (`bounds_*`).
"""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from coursekit import ASSIGNMENT
from coursekit.steps import observation_limits as limits
from coursekit.steps.judge import verdict

from .conftest import REPO


def number(values: list[float], shape: list[int] | None = None) -> dict[str, Any]:
    shape = [len(values)] if shape is None else shape
    size = 1
    for n in shape:
        size *= n
    return {"shape": shape, "size": size, "data": values}


def claim(size: int, shape: list[int] | None = None) -> dict[str, Any]:
    """What the observer records of an as_strided view claiming `size` values: the first 20,000 and the size."""
    return {"shape": shape or [size], "size": size, "data": [0.0] * min(size, limits.MAX_VALUES)}


def test_honest_records_pass_unchanged() -> None:
    obs = {"known": number([5.25], []), "random": [number([1.0, "nan", "-inf"]), number([0.0] * 1000, [1000])],
           "raised": {"at": "x", "message": "boom", "not_implemented": False}, "flag": True, "none": None}
    assert limits.checked(copy.deepcopy(obs)) == obs
    big_mistake = number([0.0] * limits.MAX_VALUES, [1000, 1000])  # loss broadcast to (1000, 1000)
    big_mistake["size"] = 1_000_000
    assert limits.checked({"known": copy.deepcopy(big_mistake)}) == {"known": big_mistake}


@pytest.mark.parametrize("size", [limits.MAX_CLAIMED + 1, 150_000_000, 10**15])
def test_a_huge_claim_becomes_a_value_the_judge_reads_as_too_large(size: int) -> None:
    obs = limits.checked({"known": claim(size)})
    assert set(obs["known"]) == {"type", "error"} and "more than" in obs["known"]["error"]
    result = verdict("test_loss_values", [obs])
    assert result[0].output_type == "error" and "the grader reads" in result[0].evalue


@pytest.mark.parametrize("record", [
    {"shape": [3], "size": 4, "data": [0.0, 0.0, 0.0]},  # size is not the product of the shape
    {"shape": [3], "size": 3, "data": [0.0]},  # fewer values than the size
    {"shape": [10**6, 10**6], "size": 10**12, "data": [0.0] * 5},  # a claim with the wrong number of values
    {"shape": [-1], "size": -1, "data": []},
    {"shape": [2.5], "size": 2, "data": [0.0, 0.0]},
    {"shape": [1] * 40, "size": 1, "data": [0.0]},  # more dimensions than NumPy has
    {"shape": [2], "size": 2, "data": ["1e308", 0.0]},  # a string that is not one the observer writes
    {"shape": [2], "size": 2, "data": [[0.0], 0.0]},
    {"shape": "[2]", "size": 2, "data": [0.0, 0.0]},
])
def test_inconsistent_numeric_records_are_refused(record: dict[str, Any]) -> None:
    refused = limits.bounded({"known": record})
    assert list(refused) == ["observer_error"] and "refused" in refused["observer_error"]
    assert verdict("test_loss_values", [refused])[0].output_type == "error"


def nested(depth: int) -> Any:
    value: Any = 0
    for _ in range(depth):
        value = [value]
    return value


@pytest.mark.parametrize("observation", [
    {"known": nested(limits.MAX_DEPTH + 1)},
    {"known": nested(50_000)},
    {"figures": [[0.0] * 1000] * (limits.MAX_NODES // 1000 + 1)},
    {"figures": [0] * (limits.MAX_ITEMS + 1)},
    {"figures": [number([0.0] * 19_000)] * 20},
    {"k" * (limits.MAX_STRING + 1): 1},
    {"known": {"x": object()}},
    [1, 2],
])
def test_records_beyond_the_bounds_are_refused(observation: Any) -> None:
    refused = limits.bounded(observation)
    assert list(refused) == ["observer_error"]


def test_long_strings_are_cut() -> None:
    obs = limits.checked({"raised": {"message": "m" * 10**6, "at": "x", "not_implemented": False},
                          "legend": ["l" * 10**6]})
    assert len(obs["raised"]["message"]) == limits.MAX_STRING and len(obs["legend"][0]) == limits.MAX_STRING


# ---------------------------------------------------------------- memory


JUDGE_AND_REPORT = """
import json, re, sys

def high_water_kb():  # this process's own peak (ru_maxrss would include what the parent had when it forked)
    return int(re.search(r"VmHWM:\\s+(\\d+)", open("/proc/self/status").read()).group(1))

from coursekit.steps.judge import observations_of, verdict
from nbformat import NotebookNode
imported = high_water_kb()
observed = json.load(open(sys.argv[1]))
loaded = high_water_kb()
for grade_id, observation in observed.items():
    bundle = {"grade_id": grade_id, "nonce": "n", "observation": observation}
    cell = NotebookNode(outputs=[NotebookNode(output_type="display_data", data={
        "application/vnd.coursekit.observation+json": bundle})])
    verdict(grade_id, observations_of(cell, grade_id, "n"))
print(json.dumps({"imported_kb": imported, "loaded_kb": loaded, "peak_kb": high_water_kb()}))
"""


@pytest.fixture(scope="module")
def honest_observations() -> dict[str, Any]:
    from grader_observe.kernel import GRADE_IDS, collect
    from grader_tests.in_process import execute

    # What the student's kernel records (no stand-in there: train and the run are observed in probe children).
    run = execute(REPO / "demo" / "cohort" / "correct_reference" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb")
    return {g: json.loads(json.dumps(collect(g, run.namespace, run.figures))) for g in GRADE_IDS}


def forge_every_number(observation: Any, record: Any) -> Any:
    if isinstance(observation, dict):
        if observation.keys() == {"shape", "size", "data"}:
            return copy.deepcopy(record)
        return {k: forge_every_number(v, record) for k, v in observation.items()}
    if isinstance(observation, list):
        return [forge_every_number(v, record) for v in observation]
    return observation


def peak_judging(observed: dict[str, Any], tmp_path: Path) -> dict[str, int]:
    path = tmp_path / "observed.json"
    path.write_text(json.dumps(observed))
    out = subprocess.run([sys.executable, "-c", JUDGE_AND_REPORT, str(path)], capture_output=True, text=True,
                         cwd=REPO, check=True, timeout=300)
    return json.loads(out.stdout)


HOSTILE = {
    "as_strided 150 M": lambda obs: forge_every_number(obs, claim(150_000_000)),
    "as_strided 10^12 as 10^6 x 10^6": lambda obs: forge_every_number(obs, claim(10**12, [10**6, 10**6])),
    "largest honest claim everywhere (1000 x 1000)": lambda obs: forge_every_number(obs, claim(10**6, [1000, 1000])),
    "deep nesting": lambda obs: {**obs, "extra": nested(900)},  # deeper is refused by the parser (test above)
    # What fits in the largest message the grader parses (coursekit/kernels/runaway.py: 4 MB of JSON).
    "giant strings": lambda obs: {**obs, "raised": {"at": "x", "message": "m" * 3_900_000, "not_implemented": 0}},
    "giant lists": lambda obs: {**obs, "extra": [[0.0] * 20_000] * 40},
}


@pytest.mark.slow
def test_no_observation_costs_the_judge_much_more_than_honest_ones(
    honest_observations: dict[str, Any], tmp_path: Path
) -> None:
    honest = peak_judging(honest_observations, tmp_path)
    # The cells judged on the kernel's record alone pass on honest work (train and the runs need probe children).
    alone = ("test_model_variables", "test_model_output", "test_loss_values", "test_loss_properties")
    assert all(verdict(g, [limits.bounded(copy.deepcopy(honest_observations[g]))])[0].output_type == "stream"
               for g in alone)
    report = {"honest": honest}
    for name, forge in HOSTILE.items():
        forged = {g: forge(o) for g, o in honest_observations.items()}
        report[name] = peak_judging(forged, tmp_path)
    print("\npeak memory (VmHWM, MB) of a process judging one notebook's 11 observations: after imports, "
          "after reading them, after judging them")
    for name, figures in report.items():
        print(f"  {name}: {figures['imported_kb'] / 1024:.0f}, {figures['loaded_kb'] / 1024:.0f}, "
              f"{figures['peak_kb'] / 1024:.0f}")
    honest_cost = honest["peak_kb"] - honest["loaded_kb"]
    for name, figures in report.items():
        # Judging a forged record costs about what judging honest work does (reading it costs what its size does).
        assert figures["peak_kb"] - figures["loaded_kb"] < honest_cost + 64 * 1024, name
