#!/usr/bin/env bash
# Installs the PostgreSQL server that tests/test_postgres_gradebook.py starts its own throwaway cluster
# with (tests/postgres/server.py). Debian's package keeps initdb and pg_ctl in
# /usr/lib/postgresql/<version>/bin and creates the unprivileged `postgres` user the tests run it as.
# Safe to run again: it does nothing when PostgreSQL is there. Needs root (or sudo) only to install.
set -euo pipefail

if compgen -G "/usr/lib/postgresql/*/bin/pg_ctl" >/dev/null && id postgres >/dev/null 2>&1; then
    echo "postgresql: already installed ($(ls /usr/lib/postgresql | sort -n | tail -1))"
    exit 0
fi

if ! command -v apt-get >/dev/null 2>&1; then
    echo "postgresql: missing and apt-get is not available; install the PostgreSQL server yourself" >&2
    exit 1
fi

SUDO=""
if [[ "$(id -u)" -ne 0 ]]; then
    SUDO="sudo"
fi

export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
# The package's own `main` cluster is not used; the tests start theirs on a free port.
$SUDO apt-get install -y -qq postgresql >/dev/null

if ! compgen -G "/usr/lib/postgresql/*/bin/pg_ctl" >/dev/null; then
    echo "postgresql: apt-get finished but no /usr/lib/postgresql/<version>/bin/pg_ctl is there" >&2
    exit 1
fi
echo "postgresql: installed $(ls /usr/lib/postgresql | sort -n | tail -1)"
