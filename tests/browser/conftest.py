"""Fixtures for the browser tests: a throw-away JupyterLab server and a headless Chromium.

The server runs the same Python as pytest, so it uses exactly the kernel, nbgrader and
lab extensions of the project's environment, but every Jupyter directory it could write
to (settings, workspaces, runtime, config, data, IPython) is a temp dir: nothing from the
developer's own Jupyter setup leaks in, and nothing the test does leaks out.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import sysconfig
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, sync_playwright

REPO_ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS_DIR = REPO_ROOT / "artifacts" / "browser"
# Debian's Chromium: Playwright's own browser download cannot reach its CDN here.
# `bash tests/install_debian_package.sh chromium` installs it.
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",  # we run as root in CI containers
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    # Without these Chromium keeps trying to reach Google services and fills the log with refused connections.
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SERVER_START_TIMEOUT_S = 90
SERVER_STOP_TIMEOUT_S = 15

# JupyterLab user settings, written to the temp settings dir. They keep the defaults a student
# gets, except for things that would make the run depend on the network.
LAB_SETTINGS: dict[str, dict[str, object]] = {
    "@jupyterlab/apputils-extension/notification.jupyterlab-settings": {
        "fetchNews": "false",
        "checkForUpdates": False,
    },
}


@dataclass(frozen=True)
class LabServer:
    base_url: str
    token: str
    root: Path
    log: Path

    def url(self, path: str) -> str:
        sep = "&" if "?" in path else "?"
        return f"{self.base_url}{path}{sep}token={self.token}"

    def api(self, method: str, path: str) -> object:
        request = urllib.request.Request(self.url(path), method=method)
        with urllib.request.urlopen(request, timeout=10) as response:
            body = response.read()
        return json.loads(body) if body else None

    def log_tail(self, lines: int = 60) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no server log)"



@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    # Keep each phase's report on the item so the page fixture knows, at teardown, whether the test failed.
    report = yield
    setattr(item, f"rep_{report.when}", report)
    return report


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_until_up(server: LabServer, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + SERVER_START_TIMEOUT_S
    last_error = ""
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"jupyter lab exited with code {process.returncode}:\n{server.log_tail()}")
        try:
            status = server.api("GET", "/api/status")
        except (urllib.error.URLError, ConnectionError, TimeoutError) as exc:
            last_error = repr(exc)
        else:
            if isinstance(status, dict) and "started" in status:
                return
        time.sleep(0.25)  # polling interval, not a wait for a state
    raise RuntimeError(
        f"jupyter lab did not answer /api/status within {SERVER_START_TIMEOUT_S} s ({last_error}):\n{server.log_tail()}"
    )


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is not None:
        return
    # SIGTERM makes jupyter_server shut its kernels down before exiting; SIGKILL only if it hangs.
    process.terminate()
    try:
        process.wait(timeout=SERVER_STOP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=SERVER_STOP_TIMEOUT_S)


@pytest.fixture(scope="session")
def artifacts_dir() -> Path:
    ARTIFACTS_DIR.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS_DIR


@pytest.fixture(scope="module")
def lab_server(tmp_path_factory: pytest.TempPathFactory, artifacts_dir: Path) -> Iterator[LabServer]:
    home = tmp_path_factory.mktemp("jupyter-home")
    root = tmp_path_factory.mktemp("lab-root")
    dirs = {
        name: home / name.lower()
        for name in (
            "JUPYTERLAB_SETTINGS_DIR",
            "JUPYTERLAB_WORKSPACES_DIR",
            "JUPYTER_RUNTIME_DIR",
            "JUPYTER_CONFIG_DIR",
            "JUPYTER_DATA_DIR",
            "IPYTHONDIR",
        )
    }
    for path in dirs.values():
        path.mkdir()
    for name, settings in LAB_SETTINGS.items():
        target = dirs["JUPYTERLAB_SETTINGS_DIR"] / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(json.dumps(settings))

    env = {key: value for key, value in os.environ.items() if not key.startswith(("JUPYTER", "IPYTHON"))}
    env.update({name: str(path) for name, path in dirs.items()})
    # A developer's MPLBACKEND=Agg would stop the kernel from drawing inline plots.
    env.pop("MPLBACKEND", None)
    # `python -m jupyter lab` runs the `jupyter-lab` found on PATH: make it this environment's, not another one's.
    env["PATH"] = os.pathsep.join([sysconfig.get_path("scripts"), env.get("PATH", os.defpath)])

    port = _free_port()
    token = secrets.token_hex(24)
    log = home / "jupyterlab.log"
    command = [
        sys.executable, "-m", "jupyter", "lab",
        "--no-browser",
        "--allow-root",
        "--ip=127.0.0.1",
        f"--port={port}",
        "--ServerApp.port_retries=0",  # fail loudly if another process grabbed the port
        f"--IdentityProvider.token={token}",
        f"--ServerApp.root_dir={root}",
    ]  # fmt: skip
    server = LabServer(base_url=f"http://127.0.0.1:{port}", token=token, root=root, log=log)
    with log.open("wb") as log_file:
        # cwd=root: nbgrader's Validate handler reads nbgrader_config.py from the server's cwd, and a
        # student's folder has none; the repo's instructor config must not be picked up.
        process = subprocess.Popen(command, cwd=root, env=env, stdout=log_file, stderr=subprocess.STDOUT)
        try:
            _wait_until_up(server, process)
            yield server
        finally:
            _stop(process)
            shutil.copy(log, artifacts_dir / "jupyterlab.log")


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not Path(CHROMIUM).is_file():
        pytest.fail(
            f"{CHROMIUM} not found: run `bash tests/install_debian_package.sh chromium` as root"
            " (or set CHROMIUM=/path/to/chromium)"
        )
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture
def page(browser: Browser, request: pytest.FixtureRequest, artifacts_dir: Path) -> Iterator[Page]:
    # A fresh context per test: no localStorage or cookies carried over from the other test.
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    context.set_default_timeout(30_000)
    page = context.new_page()
    try:
        yield page
    finally:
        report = getattr(request.node, "rep_call", None)
        if report is None or report.failed:
            try:
                page.screenshot(path=artifacts_dir / f"{request.node.name}-failure.png", full_page=True)
            except Exception as exc:  # the page may be the thing that broke; keep the original error
                print(f"could not take failure screenshot: {exc!r}")
        context.close()
