"""Keeps TensorFlow's start-up log lines out of your way. Any other message still shows.

TensorFlow writes these lines from C++ before its logging settings apply, so
TF_CPP_MIN_LOG_LEVEL alone cannot hide them. This file comes with the assignment: no need to edit it.
"""

import contextlib
import os
import re
import sys
import tempfile

# Start-up chatter only: CPU features, missing CUDA drivers on a machine without a GPU, duplicate
# plugin registration. A line that matches none of these is printed as usual.
STARTUP_NOISE = re.compile(
    r"All log messages before absl::InitializeLog\(\) is called"
    r"|cudart_stub\.cc|cuda_platform\.cc:\d+\] failed call to cuInit|cuda_executor\.cc"
    r"|cpu_feature_guard\.cc|To enable the following instructions|rebuild TensorFlow with the appropriate"
    r"|oneDNN custom operations are on|Unable to register cu(DNN|FFT|BLAS) factory"
    r"|computation placer already registered|TF-TRT Warning"
)


@contextlib.contextmanager
def quiet_tensorflow_startup():
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # TensorFlow's own INFO and WARNING lines
    sys.stderr.flush()
    with tempfile.TemporaryFile() as captured:
        saved = os.dup(2)
        os.dup2(captured.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            captured.seek(0)
            for line in captured.read().decode(errors="replace").splitlines():
                if line.strip() and not STARTUP_NOISE.search(line):
                    print(line, file=sys.stderr)
