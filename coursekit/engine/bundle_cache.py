"""What `nbgrader generate_assignment` made for a bundle (the structure-only gradebook and the release), kept by the
content it was made from, so a run whose source, config, nbgrader and kit are unchanged does not pay for it again.

Making it costs an nbgrader process (3-7 s, on the critical path of every run: no worker starts without it), and
`make grade STUDENT=id`, a regrade or a test grades a few notebooks at a time. The key covers every input of that
step: the bundle's files (source/ and nbgrader_config.py), nbgrader's version and the kit's own code (its
preprocessors run in it). An entry is used only when each of its files still has the digest its manifest records;
anything else (missing, corrupt, unreadable) is made again.

The cache is the instructor's: `$COURSEKIT_CACHE`, else `$XDG_CACHE_HOME/coursekit`, else `~/.cache/coursekit`, made
0700. Student code never runs as the instructor's user (kernels are sandboxed), and nothing a student sends is in a
key or an entry: a submission is not part of the bundle.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

import coursekit

CACHE_ENV = "COURSEKIT_CACHE"
MANIFEST = "manifest.json"
_KIT_ROOT = Path(coursekit.__file__).resolve().parent


def cache_root() -> Path:
    explicit = os.environ.get(CACHE_ENV)
    if explicit:
        return Path(explicit)
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "coursekit"


def key(files: dict[str, bytes]) -> str:
    """A digest of everything `generate_assignment` reads for this bundle, and of the code that runs it."""
    from nbgrader import __version__ as nbgrader_version

    digest = hashlib.sha256(f"nbgrader {nbgrader_version}\n".encode())
    for name in sorted(files):
        digest.update(f"{name}\n{len(files[name])}\n".encode())
        digest.update(files[name])
    for path in sorted(_KIT_ROOT.rglob("*.py")):
        digest.update(f"kit {path.relative_to(_KIT_ROOT).as_posix()}\n".encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


def made(files: dict[str, bytes], make: Callable[[], dict[str, bytes]]) -> dict[str, bytes]:
    """`make()`'s files for this bundle: from the cache when an intact entry exists, else made and kept."""
    entry = cache_root() / "bundles" / key(files)
    found = _load(entry)
    if found is not None:
        return found
    result = make()
    _store(entry, result)
    return result


def _load(entry: Path) -> dict[str, bytes] | None:
    try:
        manifest = json.loads((entry / MANIFEST).read_text())
        files = {}
        for name, digest in manifest.items():
            data = (entry / "files" / name).read_bytes()
            if hashlib.sha256(data).hexdigest() != digest:
                return None
            files[name] = data
        return files
    except (OSError, ValueError, AttributeError, TypeError):
        return None


def _store(entry: Path, files: dict[str, bytes]) -> None:
    """Written whole in a scratch folder beside it, then renamed into place: a reader sees all of it or nothing,
    and of two runs that made it at once, one keeps its copy. A cache that cannot be written costs time only."""
    try:
        cache_root().mkdir(parents=True, exist_ok=True, mode=0o700)
        entry.parent.mkdir(exist_ok=True, mode=0o700)
        scratch = Path(tempfile.mkdtemp(prefix=".making-", dir=entry.parent))
        try:
            for name, data in files.items():
                target = scratch / "files" / name
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(data)
            manifest = {name: hashlib.sha256(data).hexdigest() for name, data in files.items()}
            (scratch / MANIFEST).write_text(json.dumps(manifest, indent=1))
            os.rename(scratch, entry)
        except OSError:
            shutil.rmtree(scratch, ignore_errors=True)
    except OSError:
        return
