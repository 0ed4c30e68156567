#!/usr/bin/env bash
# Installs the Debian packages the tests need, only those that are missing:
#   bash tests/install_debian_package.sh chromium postgresql
# `make test` runs it so a fresh clone in CI (root, nothing installed by hand) sets itself up. It does nothing
# (no apt-get update, no root needed) when every package is installed already. The tests use Debian's
# chromium (tests/browser: Playwright's own browser download needs a CDN this machine cannot reach) and
# postgresql (tests/postgres/server.py: initdb and pg_ctl in /usr/lib/postgresql/<version>/bin, and the
# unprivileged `postgres` user it runs its throwaway cluster as; the package's own `main` cluster is unused).
set -euo pipefail

if [[ $# -eq 0 ]]; then
    echo "usage: bash $0 PACKAGE [PACKAGE ...]  (Debian package names, e.g. chromium postgresql)" >&2
    exit 2
fi

for package in "$@"; do
    # Debian policy's package name syntax; anything else (an option, a path) is a caller's mistake.
    if [[ ! "$package" =~ ^[a-z0-9][a-z0-9+.-]+$ ]]; then
        echo "install_debian_package: '$package' is not a Debian package name" >&2
        exit 2
    fi
done

if ! command -v dpkg-query >/dev/null 2>&1 || ! command -v apt-get >/dev/null 2>&1; then
    echo "install_debian_package: this is not a Debian-like system (no dpkg-query/apt-get);" \
        "install these yourself: $*" >&2
    exit 1
fi

is_installed() {
    [[ "$(dpkg-query -W -f='${Status}' "$1" 2>/dev/null)" == "install ok installed" ]]
}

missing=()
for package in "$@"; do
    if is_installed "$package"; then
        echo "$package: already installed ($(dpkg-query -W -f='${Version}' "$package"))"
    else
        missing+=("$package")
    fi
done
if [[ ${#missing[@]} -eq 0 ]]; then
    exit 0
fi

SUDO=()
if [[ "$(id -u)" -ne 0 ]]; then
    if ! command -v sudo >/dev/null 2>&1; then
        echo "install_debian_package: ${missing[*]} missing; installing needs root and sudo is not available." \
            "Run as root: apt-get update && apt-get install -y ${missing[*]}" >&2
        exit 1
    fi
    SUDO=(sudo)
fi

echo "installing ${missing[*]} with apt-get"
export DEBIAN_FRONTEND=noninteractive
"${SUDO[@]}" apt-get update -qq
"${SUDO[@]}" apt-get install -y -qq "${missing[@]}" >/dev/null

for package in "${missing[@]}"; do
    if ! is_installed "$package"; then
        echo "install_debian_package: apt-get finished but $package is still not installed" >&2
        exit 1
    fi
    echo "$package: installed $(dpkg-query -W -f='${Version}' "$package")"
done
