"""A throwaway PostgreSQL server for the tests: its own cluster in a temp dir, on loopback, removed after.

Uses Debian's `postgresql` package (`tests/install_debian_package.sh postgresql` installs it). PostgreSQL refuses to
run as root, so as root the cluster belongs to the package's unprivileged `postgres` user.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

SETUP_HINT = "run `bash tests/install_debian_package.sh postgresql` (as root), which `make test` runs first"
DATABASE = "gradebook"
ROLE = "coursekit"


class PostgresUnavailable(RuntimeError):
    """PostgreSQL is missing or would not start; the message says what to do."""


def binaries() -> Path:
    """The folder with initdb and pg_ctl: Debian keeps them off PATH, in /usr/lib/postgresql/<version>/bin."""
    debian = sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"), key=lambda p: int(p.parts[-3]))
    if debian:
        return debian[-1].parent
    on_path = shutil.which("pg_ctl")
    if on_path:
        return Path(on_path).parent
    raise PostgresUnavailable(f"PostgreSQL is not installed (no pg_ctl found): {SETUP_HINT}")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _run_as(user: str | None, *command: str | Path) -> None:
    args = [str(part) for part in command]
    if user is not None:
        args = ["runuser", "-u", user, "--", *args]
    result = subprocess.run(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, check=False)
    if result.returncode != 0:
        raise PostgresUnavailable(f"`{' '.join(args)}` failed ({result.returncode}):\n{result.stdout[-3000:]}")


@contextlib.contextmanager
def postgres_server() -> Iterator[str]:
    """Start a fresh cluster with one empty database; yield its SQLAlchemy URL; always stop and delete it."""
    bin_dir = binaries()
    user = None
    if os.geteuid() == 0:
        user = "postgres"
        try:
            owner = pwd.getpwnam(user)
        except KeyError:
            raise PostgresUnavailable(f"no `postgres` user to run PostgreSQL as, not root: {SETUP_HINT}") from None
    # Not under pytest's tmp_path or a private TMPDIR: the server's user must reach the folder.
    home = Path(tempfile.mkdtemp(prefix="coursekit-pg-", dir="/tmp" if user is not None else None))
    if user is not None:
        os.chown(home, owner.pw_uid, owner.pw_gid)
    data, log, port = home / "data", home / "server.log", _free_port()
    started = False
    try:
        _run_as(user, bin_dir / "initdb", "-D", data, "-U", ROLE, "--auth=trust", "--no-sync", "-E", "UTF8")
        # fsync off: a test cluster that a crash may lose is fine, and it saves the shared disk's time.
        options = f"-h 127.0.0.1 -p {port} -k {home} -c fsync=off -c full_page_writes=off"
        try:
            _run_as(user, bin_dir / "pg_ctl", "-D", data, "-l", log, "-o", options, "-w", "-t", "60", "start")
        except PostgresUnavailable as exc:
            server_log = log.read_text(errors="replace")[-3000:] if log.exists() else ""
            raise PostgresUnavailable(f"{exc}\nserver log:\n{server_log}") from None
        started = True
        _run_as(user, bin_dir / "createdb", "-h", "127.0.0.1", "-p", str(port), "-U", ROLE, DATABASE)
        yield f"postgresql://{ROLE}@127.0.0.1:{port}/{DATABASE}"
    finally:
        if started:
            with contextlib.suppress(PostgresUnavailable):
                _run_as(user, bin_dir / "pg_ctl", "-D", data, "-m", "immediate", "-w", "stop")
        shutil.rmtree(home, ignore_errors=True)
