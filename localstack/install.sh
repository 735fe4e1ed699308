#!/usr/bin/env bash
# Idempotent: creates localstack/.venv and installs the pinned moto server into it.
set -euo pipefail

MOTO_VERSION="5.2.5"
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
venv="$here/.venv"

if ! command -v python3 >/dev/null 2>&1; then
    echo "install.sh: python3 not found; install it (Debian: apt-get install python3 python3-venv)" >&2
    exit 1
fi

if [[ ! -x "$venv/bin/python" ]]; then
    if ! python3 -m venv "$venv" >/dev/null 2>&1; then
        rm -rf "$venv"
        echo "install.sh: 'python3 -m venv' failed; install the venv module (Debian: apt-get install python3-venv)" >&2
        exit 1
    fi
fi

# Skip pip when moto (with the server extras) is already at the pinned version.
if "$venv/bin/python" - "$MOTO_VERSION" >/dev/null 2>&1 <<'PY'
import sys, importlib.metadata as md
import flask, flask_cors  # the [server] extras
sys.exit(0 if md.version("moto") == sys.argv[1] else 1)
PY
then
    exit 0
fi

echo "install.sh: installing moto[server]==$MOTO_VERSION into $venv"
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check "moto[server]==$MOTO_VERSION"
