"""The bundle cache (coursekit/engine/bundle_cache.py): an entry is reused only for the same inputs, and only whole."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from coursekit.engine import bundle_cache

SOURCE = {"source/a/a.ipynb": b'{"cells": []}', "nbgrader_config.py": b"c = get_config()\n"}
MADE = {"gradebook.db": b"SQLite format 3\x00 structure", "release/a/a.ipynb": b'{"cells": ["released"]}'}


@pytest.fixture(autouse=True)
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv(bundle_cache.CACHE_ENV, str(tmp_path / "cache"))
    return tmp_path / "cache"


class Maker:
    """generate_assignment's stand-in: counts its calls."""

    def __init__(self, files: dict[str, bytes] = MADE) -> None:
        self.calls, self.files = 0, files

    def __call__(self) -> dict[str, bytes]:
        self.calls += 1
        return dict(self.files)


def test_the_same_inputs_are_made_once(cache: Path) -> None:
    make = Maker()
    assert bundle_cache.made(SOURCE, make) == MADE
    assert bundle_cache.made(dict(SOURCE), make) == MADE
    assert make.calls == 1
    assert (cache.stat().st_mode & 0o777) == 0o700  # the instructor's alone


@pytest.mark.parametrize("change", ["source", "config", "new file", "renamed"])
def test_any_change_of_input_makes_it_again(change: str) -> None:
    make = Maker()
    bundle_cache.made(SOURCE, make)
    changed = dict(SOURCE)
    if change == "source":
        changed["source/a/a.ipynb"] = b'{"cells": [1]}'
    elif change == "config":
        changed["nbgrader_config.py"] += b"c.X = 1\n"
    elif change == "new file":
        changed["source/a/data.csv"] = b"x\n"
    else:
        changed["source/a/b.ipynb"] = changed.pop("source/a/a.ipynb")
    bundle_cache.made(changed, make)
    assert make.calls == 2


def test_the_kits_code_and_nbgrader_are_in_the_key(monkeypatch: pytest.MonkeyPatch) -> None:
    before = bundle_cache.key(SOURCE)
    monkeypatch.setattr("nbgrader.__version__", "0.0.0-other")
    assert bundle_cache.key(SOURCE) != before


@pytest.mark.parametrize("damage", ["corrupt", "missing file", "bad manifest", "no manifest"])
def test_a_damaged_entry_is_made_again(cache: Path, damage: str) -> None:
    make = Maker()
    bundle_cache.made(SOURCE, make)
    entry = next((cache / "bundles").iterdir())
    if damage == "corrupt":
        (entry / "files" / "gradebook.db").write_bytes(b"SQLite format 3\x00 tampered")
    elif damage == "missing file":
        (entry / "files" / "release" / "a" / "a.ipynb").unlink()
    elif damage == "bad manifest":
        (entry / bundle_cache.MANIFEST).write_text(json.dumps(["not", "a", "mapping"]))
    else:
        (entry / bundle_cache.MANIFEST).unlink()
    assert bundle_cache.made(SOURCE, make) == MADE
    assert make.calls == 2


def test_a_cache_that_cannot_be_written_costs_time_only(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    blocked = tmp_path / "a-file"
    blocked.write_text("not a folder")
    monkeypatch.setenv(bundle_cache.CACHE_ENV, str(blocked / "cache"))
    make = Maker()
    assert bundle_cache.made(SOURCE, make) == MADE
    assert bundle_cache.made(SOURCE, make) == MADE
    assert make.calls == 2
