#!/usr/bin/env bash
# Installs what the tests and the demo need, and only what is missing: the Debian packages
# (python3-venv, shellcheck, cloud-init, curl, openssl, prometheus for promtool) and the emulator's venv (install.sh).
# Idempotent, and safe to run from several test processes at once (one installs, the others
# wait for it on a lock). `make demo`, `make test` and a plain `cargo test` run it.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
exec 9>"$here/.need.lock"
flock 9

missing=()
python3 -c 'import ensurepip, venv' >/dev/null 2>&1 || missing+=(python3-venv)
# The Debian package of each tool, where its name differs (promtool ships with prometheus).
declare -A package=([promtool]=prometheus)
for tool in shellcheck cloud-init curl openssl promtool; do
    command -v "$tool" >/dev/null 2>&1 || missing+=("${package[$tool]:-$tool}")
done

if ((${#missing[@]})); then
    if [[ "$(id -u)" -eq 0 ]]; then
        sudo=()
    elif sudo -n true >/dev/null 2>&1; then
        sudo=(sudo -n)
    else
        echo "need.sh: missing ${missing[*]}; install them (Debian: sudo apt-get install ${missing[*]})" >&2
        exit 1
    fi
    echo "need.sh: installing ${missing[*]}" >&2
    "${sudo[@]}" apt-get update -qq
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi

"$here/install.sh"
