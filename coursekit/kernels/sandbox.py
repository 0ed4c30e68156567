"""Confine a forked kernel child before it runs a student's code.

`confine()` runs in the warm parent's forked child (coursekit/kernels/warm_kernels.py), while it is still
single-threaded and before it becomes an ipykernel:

- filesystem: a new mount namespace whose root is an empty tmpfs holding only the system (read-only),
  this Python and its .venv (read-only), `KERNEL_VISIBLE` from the kit's folder (read-only), the
  kernel's own socket folder, and a private size-limited scratch tmpfs that is the kernel's working
  folder, /tmp and $HOME. The course (source, solutions, grader_tests, gradebook, other students) is
  not in it at all.
- network: a new, empty network namespace (not even loopback is up); the kernel talks to nbgrader
  over unix sockets (jupyter_client's `ipc` transport) in its socket folder.
- identity: a uid of its own (SANDBOX_UID_BASE + pid), no groups, no capabilities, no_new_privs,
  so a kernel cannot signal, trace or read another one.
- limits: memory and processes by a cgroup per kernel (v2, or v1 as on this machine), else by
  rlimits; a CPU share by the same cgroup (at most `Limits.cpus` cores, and an equal weight beside
  every other kernel, however many processes it starts); CPU seconds, file size and core dumps by
  rlimits. The warm parent kills a kernel past
  the per-submission deadline (`Limits.deadline`).
- lifetime: the kernel is pid 1 of a PID namespace of its own, so whatever it starts (setsid or
  double fork included) ends when it ends; it dies with the supervisor the warm parent forked, which
  dies with the warm parent (PR_SET_PDEATHSIG on both).
- environment: `kernel_environment()` is all a kernel (and the warm parent it is forked from) gets of
  the grader's environment: an allow-list, so no password or key in the instructor's shell reaches it.

`probe()` runs the same confinement in a throwaway child and reports which protections hold, so the
grader can say plainly what is missing instead of running unprotected (docs/security.md).
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import resource
import select
import shutil
import signal
import socket
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import NoReturn

# Paths under the kit's folder that a kernel needs: bound back read-only, everything else of it hidden.
KERNEL_VISIBLE = (".venv", "grader_observe")
KIT = Path(__file__).resolve().parents[2]

SANDBOX_UID_BASE = 2_000_000_000  # + the kernel's pid: a uid no real user has, one per kernel
SYSTEM = ("/usr", "/etc")
SYSTEM_LINKS = ("/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")
DEVICES = ("null", "zero", "full", "random", "urandom", "tty")
GiB = 1 << 30
MiB = 1 << 20

ALLOW_ENV = "COURSEKIT_ALLOW_UNSANDBOXED"

# All a kernel gets of the grader's environment: what Python, Matplotlib and TensorFlow need to behave as
# on the instructor's machine. Never credentials (PGPASSWORD, cloud keys, COURSEKIT_DB_URL): a solution cell
# can print its environment into its own feedback. EXTRA_ENV names more, for a course that needs them.
KERNEL_ENV = ("PATH", "LANG", "LANGUAGE", "LC_ALL", "LC_CTYPE", "LC_NUMERIC", "LC_MESSAGES", "TZ",
              "MPLBACKEND", "TF_CPP_MIN_LOG_LEVEL", "TF_ENABLE_ONEDNN_OPTS", "CUDA_VISIBLE_DEVICES",
              "PYTHONHASHSEED", "PYTHONUNBUFFERED", "PYDEVD_DISABLE_FILE_VALIDATION")
EXTRA_ENV = "COURSEKIT_KERNEL_ENV"  # comma-separated names added to KERNEL_ENV
# The warm parent also reads its limits (Limits.from_env) and whether to run without a protection.
PARENT_ENV_PREFIXES = ("COURSEKIT_SANDBOX_", "COURSEKIT_SUBMISSION_", ALLOW_ENV, EXTRA_ENV)

CLONE_NEWNS = 0x00020000
CLONE_NEWPID = 0x20000000
CLONE_NEWUTS = 0x04000000
CLONE_NEWIPC = 0x08000000
CLONE_NEWUSER = 0x10000000
CLONE_NEWNET = 0x40000000
MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC = 1, 2, 4, 8
MS_REMOUNT, MS_BIND, MS_REC, MS_PRIVATE = 32, 4096, 16384, 1 << 18
MNT_DETACH = 2
PR_SET_PDEATHSIG, PR_SET_DUMPABLE, PR_CAPBSET_DROP, PR_SET_NO_NEW_PRIVS = 1, 4, 24, 38
SYS_PIVOT_ROOT = {"x86_64": 155, "aarch64": 41}

_libc = ctypes.CDLL(None, use_errno=True)


class SandboxError(RuntimeError):
    """A protection could not be set up; the message names it."""


def _check(result: int, what: str) -> None:
    if result != 0:
        errno = ctypes.get_errno()
        raise SandboxError(f"{what}: {os.strerror(errno)}")


def _env_number(name: str, default: float) -> float:
    value = os.environ.get(name)
    return float(value) if value else default


@dataclass(frozen=True)
class Limits:
    """What one kernel (one submission) may use. Each can be set by its environment variable."""

    memory: int = 2 * GiB  # COURSEKIT_SANDBOX_MEMORY_MB
    # Threads count. An honest kernel here (2 cores) has 19; TensorFlow adds about two per core: on a
    # machine with more than about 40 cores raise it (COURSEKIT_SANDBOX_PROCESSES). A process flood meets it early.
    processes: int = 128
    cpus: float = 1.0  # COURSEKIT_SANDBOX_CPUS: cores a kernel may use at most (cgroup quota)
    cpu_seconds: int = 600  # COURSEKIT_SANDBOX_CPU_SECONDS
    file_size: int = 64 * MiB  # one file; the scratch tmpfs bounds the total
    scratch: int = 256 * MiB
    deadline: float = 600.0  # COURSEKIT_SUBMISSION_DEADLINE: wall seconds per submission

    @classmethod
    def from_env(cls) -> Limits:
        return cls(
            memory=int(_env_number("COURSEKIT_SANDBOX_MEMORY_MB", 2048) * MiB),
            processes=int(_env_number("COURSEKIT_SANDBOX_PROCESSES", 128)),
            cpus=_env_number("COURSEKIT_SANDBOX_CPUS", 1.0),
            cpu_seconds=int(_env_number("COURSEKIT_SANDBOX_CPU_SECONDS", 600)),
            deadline=_env_number("COURSEKIT_SUBMISSION_DEADLINE", 600.0),
        )


@dataclass
class Report:
    """Which protections hold: name -> a short description, or the reason it is missing."""

    held: dict[str, str] = field(default_factory=dict)
    missing: dict[str, str] = field(default_factory=dict)

    def line(self) -> str:
        parts = [f"{name} {detail} ✓".replace("  ", " ") for name, detail in self.held.items()]
        parts += [f"{name} ✗ ({reason})" for name, reason in self.missing.items()]
        return "sandbox: " + " ".join(parts)

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> Report:
        return cls(**json.loads(text))


def kernel_environment(env: dict[str, str], *, parent: bool = False) -> dict[str, str]:
    """The allow-listed part of `env` a kernel gets; `parent`: plus the warm parent's own settings."""
    names = {*KERNEL_ENV, *filter(None, (n.strip() for n in env.get(EXTRA_ENV, "").split(",")))}
    return {name: value for name, value in env.items()
            if name in names or (parent and name.startswith(PARENT_ENV_PREFIXES))}


# ---------------------------------------------------------------- system calls


def _unshare(flags: int) -> None:
    _check(_libc.unshare(ctypes.c_int(flags)), "unshare")


def _mount(source: str | None, target: str, fstype: str | None, flags: int = 0, data: str | None = None) -> None:
    result = _libc.mount(
        None if source is None else source.encode(), target.encode(),
        None if fstype is None else fstype.encode(), ctypes.c_ulong(flags),
        None if data is None else data.encode(),
    )
    _check(result, f"mount {source or fstype} on {target}")


def _bind(source: str, target: Path, *, writable: bool = False) -> None:
    """Bind `source` at `target` (made as a file or folder to match); read-only unless `writable`."""
    if os.path.isdir(source):
        target.mkdir(parents=True, exist_ok=True)
    else:
        target.parent.mkdir(parents=True, exist_ok=True)
        target.touch()
    _mount(source, str(target), None, MS_BIND | MS_REC)
    if not writable:
        # A remount must keep the flags the source mount is locked with (in a user namespace).
        kept = os.statvfs(source).f_flag & (MS_NOSUID | MS_NODEV | MS_NOEXEC)
        _mount(None, str(target), None, MS_BIND | MS_REMOUNT | MS_RDONLY | MS_NOSUID | kept)


def _pivot_root(new_root: str) -> None:
    number = SYS_PIVOT_ROOT.get(os.uname().machine)
    if number is None:
        raise SandboxError(f"pivot_root: unknown system call number on {os.uname().machine}")
    old = Path(new_root) / ".old-root"  # made before the new root turned read-only
    _check(_libc.syscall(ctypes.c_long(number), new_root.encode(), str(old).encode()), "pivot_root")
    os.chdir("/")
    _check(_libc.umount2(b"/.old-root", ctypes.c_int(MNT_DETACH)), "umount the old root")


def _drop_capabilities() -> None:
    """No capability is left to undo the mounts or change uid, even where uid 0 remains (user namespace)."""
    for cap in range(64):
        _libc.prctl(PR_CAPBSET_DROP, cap, 0, 0, 0)

    class Header(ctypes.Structure):
        _fields_ = (("version", ctypes.c_uint32), ("pid", ctypes.c_int))

    class Data(ctypes.Structure):
        _fields_ = (("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32),
                    ("inheritable", ctypes.c_uint32))

    header = Header(0x20080522, 0)  # _LINUX_CAPABILITY_VERSION_3
    data = (Data * 2)()
    _check(_libc.capset(ctypes.byref(header), ctypes.byref(data)), "capset")


# ---------------------------------------------------------------- cgroups


def _own_cgroup_v2() -> Path | None:
    for line in Path("/proc/self/cgroup").read_text().splitlines():
        if line.startswith("0::"):
            for mount in (Path("/sys/fs/cgroup"), Path("/sys/fs/cgroup/unified")):
                if (mount / "cgroup.controllers").exists():
                    return mount / line[3:].lstrip("/")
    return None


def _own_cgroup_v1(controller: str) -> Path | None:
    for line in Path("/proc/self/cgroup").read_text().splitlines():
        _, controllers, path = line.split(":", 2)
        if controller in controllers.split(","):
            mount = Path("/sys/fs/cgroup") / controller
            if mount.is_dir():
                return mount / path.lstrip("/")
    return None


def cgroup_folders(name: str) -> dict[str, Path]:
    """Where a kernel's cgroups go, by what they limit: under this process's own cgroups."""
    v2 = _own_cgroup_v2()
    controllers = set((v2 / "cgroup.controllers").read_text().split()) if v2 is not None else set()
    if v2 is not None and {"memory", "pids"} <= controllers:
        cpu = {"cpu share": v2 / name} if "cpu" in controllers else {}
        return {"memory": v2 / name, "processes": v2 / name, **cpu}
    folders = {}
    for what, controller in (("memory", "memory"), ("processes", "pids"), ("cpu share", "cpu")):
        own = _own_cgroup_v1(controller)
        if own is not None:
            folders[what] = own / name
    return folders


def _join_cgroups(name: str, limits: Limits) -> dict[str, str]:
    """Put this process in cgroups limiting its memory and processes; returns what holds, by name."""
    held: dict[str, str] = {}
    for what, folder in cgroup_folders(name).items():
        try:
            folder.mkdir(exist_ok=True)
            v2 = (folder / "cgroup.controllers").exists()
            if what == "memory":
                if v2:
                    (folder / "memory.max").write_text(str(limits.memory))
                    with contextlib.suppress(OSError):
                        (folder / "memory.swap.max").write_text("0")
                else:
                    (folder / "memory.limit_in_bytes").write_text(str(limits.memory))
                    with contextlib.suppress(OSError):  # absent without swap accounting
                        (folder / "memory.memsw.limit_in_bytes").write_text(str(limits.memory))
            elif what == "cpu share":
                # A quota caps the kernel at `cpus` cores; the weight (the default, set for clarity) makes a kernel
                # with 200 busy processes count as much as one with a single process beside it.
                period = 100_000
                if v2:
                    (folder / "cpu.max").write_text(f"{int(limits.cpus * period)} {period}")
                    (folder / "cpu.weight").write_text("100")
                else:
                    (folder / "cpu.cfs_period_us").write_text(str(period))
                    (folder / "cpu.cfs_quota_us").write_text(str(int(limits.cpus * period)))
                    (folder / "cpu.shares").write_text("1024")
            else:
                (folder / "pids.max").write_text(str(limits.processes))
            (folder / "cgroup.procs").write_text(str(os.getpid()))
            held[what] = f"cgroup {'v2' if v2 else 'v1'}"
        except OSError:
            continue
    return held


def remove_cgroups(name: str) -> None:
    """In the warm parent, after a kernel ended: end whatever it left running there, then remove its cgroups."""
    for folder in set(cgroup_folders(name).values()):
        if not folder.is_dir():
            continue
        with contextlib.suppress(OSError):
            (folder / "cgroup.kill").write_text("1")
        for _ in range(50):
            with contextlib.suppress(OSError):
                for pid in (folder / "cgroup.procs").read_text().split():
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(int(pid), 9)
            try:
                folder.rmdir()
                break
            except OSError:
                time.sleep(0.02)


def kill_uid(uid: int) -> None:
    """End every process running as `uid`: a kernel's uid is its own, so these are its leftovers."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError, ValueError):
            if entry.stat().st_uid == uid:
                os.kill(int(entry.name), 9)


# ---------------------------------------------------------------- the sandbox


@dataclass(frozen=True)
class Layout:
    """Where one kernel's sandbox lives on the host, and what it shows."""

    folder: Path  # empty, private to this kernel: the new root is mounted on folder/root
    cwd: str  # the kernel's working folder: a copy of it is the scratch folder
    sockets: str = ""  # the kernel's socket folder (ipc transport), bound writable at the same path
    # The process the warm parent forked (the kernel itself is pid 1 of its own namespace): names its uid.
    pid: int = field(default_factory=os.getpid)

    @property
    def uid(self) -> int:
        return SANDBOX_UID_BASE + self.pid


def _copy_folder(source: str, target: Path, budget: int) -> None:
    """The student's own files from the working folder, while they fit the scratch size."""
    with contextlib.suppress(OSError):
        for entry in os.scandir(source):
            if entry.is_file(follow_symlinks=False) and entry.stat().st_size <= budget:
                budget -= entry.stat().st_size
                shutil.copyfile(entry.path, target / entry.name)


def _build_root(layout: Layout, limits: Limits, uid: int) -> None:
    root = layout.folder / "root"
    root.mkdir(parents=True, exist_ok=True)
    _mount("tmpfs", str(root), "tmpfs", MS_NOSUID | MS_NODEV, "size=16m,mode=0755")
    for path in SYSTEM:
        _bind(path, root / path.lstrip("/"))
    for path in SYSTEM_LINKS:
        if os.path.islink(path):
            (root / path.lstrip("/")).symlink_to(os.readlink(path))
        elif os.path.isdir(path):
            _bind(path, root / path.lstrip("/"))
    # The scratch folder: the only place the kernel can write, bounded in size.
    scratch = layout.folder / "scratch"
    scratch.mkdir(exist_ok=True)
    _mount("tmpfs", str(scratch), "tmpfs", MS_NOSUID | MS_NODEV,
           f"size={limits.scratch},mode=0700,uid={uid},gid={uid}")
    for name in ("work", "tmp", "shm"):
        (scratch / name).mkdir()
        os.chown(scratch / name, uid, uid)
    _copy_folder(layout.cwd, scratch / "work", limits.scratch // 2)
    for entry in (scratch / "work").iterdir():
        os.chown(entry, uid, uid)
    _bind(str(scratch / "tmp"), root / "tmp", writable=True)
    # Python and the kit's visible paths after /tmp: a kit cloned under /tmp (as CI does) stays visible.
    python = {sys.base_prefix, sys.prefix, os.path.realpath(sys.base_prefix), os.path.realpath(sys.prefix)}
    python |= {str(KIT / name) for name in KERNEL_VISIBLE if (KIT / name).exists()}
    for path in sorted(python, key=len):
        if not path.startswith(("/usr/", "/etc/")) and not (root / path.lstrip("/")).exists():
            _bind(path, root / path.lstrip("/"))
    _bind(str(scratch / "work"), root / layout.cwd.lstrip("/"), writable=True)  # after /tmp: it may be in it

    (root / "dev").mkdir()
    for name in DEVICES:
        if os.path.exists(f"/dev/{name}"):
            _bind(f"/dev/{name}", root / "dev" / name, writable=True)
    _bind(str(scratch / "shm"), root / "dev" / "shm", writable=True)
    if layout.sockets:
        _bind(layout.sockets, root / layout.sockets.lstrip("/"), writable=True)
    (root / "proc").mkdir()
    try:  # a proc of its own that shows only the kernel's own processes
        _mount("proc", str(root / "proc"), "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, "hidepid=invisible")
    except SandboxError:
        _bind("/proc", root / "proc", writable=True)
    (root / ".old-root").mkdir()
    _mount(None, str(root), None, MS_BIND | MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV)
    _pivot_root(str(root))


def _map_ids(uid: int, gid: int) -> None:
    Path("/proc/self/setgroups").write_text("deny")
    Path("/proc/self/uid_map").write_text(f"0 {uid} 1")
    Path("/proc/self/gid_map").write_text(f"0 {gid} 1")


def _die_with_parent(alive: int, signum: int = signal.SIGKILL) -> None:
    """End this process when its parent ends. `alive`: a pipe only the parent writes to; EOF says it is gone already."""
    _libc.prctl(PR_SET_PDEATHSIG, signum, 0, 0, 0)
    if select.select([alive], [], [], 0)[0]:
        os._exit(1)


def die_with_parent(parent: int, signum: int) -> None:
    """In a child just forked by `parent`: receive `signum` when it ends (or end now, if it has already)."""
    _libc.prctl(PR_SET_PDEATHSIG, signum, 0, 0, 0)
    if os.getppid() != parent:
        os._exit(1)


def _fork_init() -> int:
    """Fork the first process of the PID namespace just made; only it returns (with its `_die_with_parent` pipe).

    This process stays outside as its supervisor: it cannot be seen or signalled from inside.
    """
    read, write = os.pipe()
    child = os.fork()
    if child == 0:
        os.close(write)
        _die_with_parent(read)
        return read
    os.close(read)
    _supervise(child)


def _supervise(init: int) -> NoReturn:
    """Wait for the namespace's first process and exit with it; any request to end (the warm parent's death arrives
    as SIGTERM, PR_SET_PDEATHSIG) kills it, which ends every process in its namespace: nothing the kernel started,
    setsid or double fork included, outlives it, whatever the kernel did to its own parent-death signal."""

    def end(*_: object) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(init, signal.SIGKILL)

    # jupyter_client interrupts the whole process group, the kernel included: nothing to pass on.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    for signum in (signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT, signal.SIGUSR1, signal.SIGUSR2, signal.SIGALRM):
        signal.signal(signum, end)
    code = 1
    try:
        _, status = os.waitpid(init, 0)
        code = os.waitstatus_to_exitcode(status)
    finally:
        os._exit(code if code >= 0 else 128 - code)


def confine(layout: Layout, limits: Limits, *, strict: bool = True) -> Report:
    """Confine this (forked, single-threaded) process; `strict`: raise if any protection is missing."""
    report = Report()
    root = really_root()
    uid, gid = (layout.uid, layout.uid) if root else (os.getuid(), os.getgid())
    held = _join_cgroups(f"coursekit-kernel-{os.getpid()}", limits) if root else {}

    # First a PID namespace, whose first process (forked here) goes on as the kernel; this one supervises it.
    # Without root, the user namespace comes with it: it must own the PID namespace for /proc to be mounted.
    userns, alive = not root, None
    try:
        _unshare(CLONE_NEWPID | (CLONE_NEWUSER if userns else 0))
        if userns:
            _map_ids(uid, gid)
            userns = False
        alive = _fork_init()
        report.held["pid namespace"] = ""
    except (SandboxError, OSError) as exc:
        report.missing["pid namespace"] = str(exc)

    flags = CLONE_NEWNS | CLONE_NEWNET | CLONE_NEWIPC | CLONE_NEWUTS
    try:
        _unshare(flags | (CLONE_NEWUSER if userns else 0))
        if userns:
            _map_ids(uid, gid)
        report.held["network"] = ""
    except (SandboxError, OSError) as exc:
        report.missing["network"] = f"no namespaces: {exc}"
        report.missing["filesystem"] = f"no namespaces: {exc}"
    if "filesystem" not in report.missing:
        try:
            _mount(None, "/", None, MS_REC | MS_PRIVATE)
            _build_root(layout, limits, uid if root else 0)
            os.chdir(layout.cwd)
            report.held["filesystem"] = ""
        except (SandboxError, OSError) as exc:
            report.missing["filesystem"] = str(exc)

    def limit(which: int, value: int) -> None:
        resource.setrlimit(which, (value, value))

    memory = f"{limits.memory / GiB:g} GiB"
    if "memory" in held:
        report.held["memory"] = f"{memory} ({held['memory']})"
    else:
        # Not RLIMIT_AS: TensorFlow reserves far more address space than it uses. RLIMIT_DATA counts
        # the private writable memory the kernel maps, which is what grows when it allocates.
        limit(resource.RLIMIT_DATA, _data_size() + limits.memory)
        report.held["memory"] = f"{memory} (RLIMIT_DATA)"
    limit(resource.RLIMIT_CPU, limits.cpu_seconds)
    report.held["cpu"] = f"{limits.cpu_seconds} s"
    if "cpu share" in held:
        report.held["cpu share"] = f"{limits.cpus:g} core ({held['cpu share']})"
    elif root:  # without root there are no cgroups at all: docs/security.md says what that leaves
        report.missing["cpu share"] = "no cpu cgroup"
    limit(resource.RLIMIT_FSIZE, limits.file_size)
    report.held["file size"] = f"{limits.file_size // MiB} MiB"
    limit(resource.RLIMIT_CORE, 0)
    if "processes" in held:
        report.held["processes"] = f"{limits.processes} ({held['processes']})"
    else:
        # Counts the processes of this kernel's own uid (root), or of its own user namespace (Linux 5.14+).
        limit(resource.RLIMIT_NPROC, limits.processes)
        report.held["processes"] = f"{limits.processes} (RLIMIT_NPROC)"

    try:
        _libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)
        if root:
            os.setgroups([])
            os.setresgid(gid, gid, gid)
            os.setresuid(uid, uid, uid)
            _libc.prctl(PR_SET_DUMPABLE, 1, 0, 0, 0)  # its own /proc/self stays its own
        else:
            _drop_capabilities()
        report.held["identity"] = f"uid {uid}" if root else "no capabilities"
    except (SandboxError, OSError) as exc:
        report.missing["identity"] = str(exc)
    if alive is not None:
        _die_with_parent(alive)  # again: a change of uid clears the parent-death signal
        os.close(alive)
    os.umask(0o077)
    os.environ.update({"HOME": "/tmp", "TMPDIR": "/tmp"})
    report.held["deadline"] = f"{limits.deadline:g} s"
    if strict and report.missing:
        raise SandboxError(report.line())
    return report


def really_root() -> bool:
    """uid 0 that can become any uid: not the mapped root of a user namespace (that takes the other path)."""
    try:
        return os.geteuid() == 0 and Path("/proc/self/uid_map").read_text().split() == ["0", "0", "4294967295"]
    except OSError:
        return False


def _data_size() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmData:"):
            return int(line.split()[1]) * 1024
    return 0


# ---------------------------------------------------------------- the probe


def _self_test(layout: Layout) -> dict[str, str]:
    """Inside a confined probe: try what a submission would, and name what was not stopped."""
    failed: dict[str, str] = {}
    secret = layout.folder.parent / "secret"
    try:
        secret.read_text()
        failed["filesystem"] = f"{secret} is readable"
    except OSError:
        pass
    with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", 9), timeout=1):
        failed["network"] = "connected to 127.0.0.1"
    planted = Path("/usr/coursekit-probe")
    try:
        planted.write_text("x")
        planted.unlink()
        failed["filesystem"] = "/usr is writable"
    except OSError:
        pass
    return failed


def probe(limits: Limits) -> Report:
    """Which protections a kernel forked from this process gets: confine a throwaway child and ask it."""
    import tempfile

    folder = Path(tempfile.mkdtemp(prefix="coursekit-probe-"))
    (folder / "secret").write_text("hidden")
    (folder / "work").mkdir()
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            os.close(read)
            layout = Layout(folder / "box", str(folder / "work"))
            try:
                report = confine(layout, limits, strict=False)
                for name, reason in _self_test(layout).items():
                    report.held.pop(name, None)
                    report.missing[name] = reason
            except Exception as exc:
                report = Report(missing={"sandbox": f"{type(exc).__name__}: {exc}"})
            os.write(write, report.to_json().encode())
            code = 0
        finally:
            os._exit(code)
    os.close(write)
    with os.fdopen(read) as pipe:
        text = pipe.read()
    os.waitpid(pid, 0)
    remove_cgroups(f"coursekit-kernel-{pid}")
    shutil.rmtree(folder, ignore_errors=True)
    return Report.from_json(text) if text else Report(missing={"sandbox": "the probe child failed"})


if __name__ == "__main__":
    print(probe(Limits.from_env()).line())
