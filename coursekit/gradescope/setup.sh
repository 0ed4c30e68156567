#!/usr/bin/env bash
# Gradescope runs this once, as root, when it builds the autograder's image (Ubuntu 22.04, its default base
# image), with the zip unpacked in /autograder/source. It installs Python 3.11 and the kit's pinned environment
# (requirements.lock) in /autograder/source/.venv, then grades the blank release once: that checks the install,
# says which isolation this container allows, and warms what the first submission would otherwise pay for
# (byte-compiled modules, Matplotlib's font cache).
set -euo pipefail

SOURCE="${COURSEKIT_GRADESCOPE_SOURCE:-/autograder/source}"
VENV="$SOURCE/.venv"
export DEBIAN_FRONTEND=noninteractive

# Ubuntu 22.04 ships Python 3.10; the kit needs 3.11 or newer (pyproject.toml). deadsnakes builds the current 3.11
# for this release; the system's own python3 is left alone.
if ! command -v python3.11 >/dev/null 2>&1; then
    apt-get update
    apt-get install -y --no-install-recommends software-properties-common gpg-agent ca-certificates
    add-apt-repository -y ppa:deadsnakes/ppa
    apt-get update
    apt-get install -y --no-install-recommends python3.11 python3.11-venv python3.11-dev
fi

python3.11 -m venv "$VENV"
"$VENV/bin/python" -m pip install --quiet --upgrade pip
# Editable: the kit (and its checks) stays in /autograder/source, whose files are not copied into the
# environment a kernel can read.
"$VENV/bin/python" -m pip install --quiet -c "$SOURCE/requirements.lock" -e "$SOURCE"

# Which protections a kernel gets here (docs/security.md): the kit's sandbox needs namespaces, which a
# container may not allow. run_autograder prints the same line for every submission.
cd "$SOURCE"
PYTHONPATH="$SOURCE" "$VENV/bin/python" -m coursekit.kernels.sandbox || true

# Warm up, and check the install: the blank release must grade (to 0 points) without an error.
warm="$(mktemp -d)"
trap 'rm -rf "$warm"' EXIT
cp "$SOURCE/release/custom_training_basics/custom_training_basics.ipynb" "$warm/"
PYTHONPATH="$SOURCE" COURSEKIT_ALLOW_UNSANDBOXED=1 "$VENV/bin/python" -m coursekit.gradescope.run \
    --grade "$warm/custom_training_basics.ipynb" "$warm/verdicts.json"
echo "coursekit gradescope: set up in $VENV"
