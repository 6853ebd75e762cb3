#!/usr/bin/env bash
# Run `ansible-test sanity` on this collection, locally (no docker), with .venv's Python.
#
# ansible-test needs the collection at .../ansible_collections/cnm/network, so the files of
# the checkout (git-tracked plus untracked non-ignored ones: work in progress is tested too)
# are copied to a temporary tree of that shape; the copy is removed afterwards
# (CNM_SANITY_KEEP=1 keeps it and prints its path).
#
# Usage: bash scripts/sanity.sh [extra ansible-test sanity arguments, e.g. --test pep8 -v]
#
# Offline work-around (see DESIGN.md §4): every sanity test venv is bootstrapped with a
# get-pip script that ansible-test downloads from ci-files.testing.ansible.com, which is not
# reachable here. This script saves a stand-in under the cache name ansible-test looks for
# (~/.ansible/test/cache/get_pip_<pip version with _>.py): it bootstraps pip from the wheel
# bundled with Python (ensurepip), then installs the requested pip from the package index.
# Everything else the sanity venvs need comes from PyPI.
#
# No --requirements: it would install ansible-test's own requirements into .venv (the
# controller); the per-test sanity venvs are managed by ansible-test and get theirs anyway.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)"
cd "$ROOT"
VENV="$ROOT/.venv"

say() { printf 'sanity: %s\n' "$*"; }

if [ ! -x "$VENV/bin/ansible-test" ]; then
    say ".venv has no ansible-test; running scripts/setup.sh"
    bash "$ROOT/scripts/setup.sh"
fi
PY="$VENV/bin/python"
PY_VERSION="$("$PY" -c 'import sys; print("%d.%d" % sys.version_info[:2])')"

# Tests that cannot run here. Each entry: test name, and why (keep the reason next to it).
SKIP_TESTS=(
    # (none: with the pip bootstrap stand-in every sanity test runs offline apart from PyPI)
)

# --- the get-pip stand-in --------------------------------------------------------------
read -r -d '' GET_PIP_STANDIN <<'PYEOF' || true
"""Stand-in for ansible-test's pip bootstrap script (get-pip.py).

Written by cnm.network's scripts/sanity.sh: the real script is downloaded from
ci-files.testing.ansible.com, which is not reachable here. ansible-test runs it as
  GET_PIP=<this file> <venv python> quiet_pip.py --disable-pip-version-check pip==<version> --no-setuptools --no-wheel
in a venv created without pip.
"""
import ensurepip
import os
import subprocess
import sys

GET_PIP_ONLY_OPTIONS = {'--no-setuptools', '--no-wheel', '--no-pip'}


def main():
    args = [arg for arg in sys.argv[1:] if arg not in GET_PIP_ONLY_OPTIONS]
    if not any(not arg.startswith('-') for arg in args):
        args.append('pip')
    saved_config = os.environ.get('PIP_CONFIG_FILE')
    # The pip wheel bundled with Python: no network needed for this step.
    ensurepip.bootstrap(upgrade=True)
    # ensurepip sets PIP_CONFIG_FILE=/dev/null in this process, which hides the machine's
    # pip configuration (CA bundle, index, proxy): restore it before using the index.
    if saved_config is None:
        os.environ.pop('PIP_CONFIG_FILE', None)
    else:
        os.environ['PIP_CONFIG_FILE'] = saved_config
    command = [sys.executable, '-m', 'pip', 'install', '--upgrade'] + args
    rc = subprocess.call(command)
    if rc:
        sys.stderr.write('get-pip stand-in: %s failed with %d\n' % (' '.join(command), rc))
    sys.exit(rc)


if __name__ == '__main__':
    main()
PYEOF

install_standin() {  # $1 = cache path ansible-test looks for
    local path="$1"
    if [ -f "$path" ] && [ "$(cat "$path")" = "$GET_PIP_STANDIN" ]; then
        say "get-pip stand-in current: $path"
        return
    fi
    mkdir -p "$(dirname "$path")"
    printf '%s\n' "$GET_PIP_STANDIN" >"$path.tmp"
    mv "$path.tmp" "$path"
    say "installed get-pip stand-in: $path"
}

# The cache name depends on the pip version this ansible-test pins for its venvs:
# the same expression ansible-test's requirements.py bootstrap() uses.
standin_path() {
    "$PY" - "$PY_VERSION" <<'PYEOF'
import os
import re
import sys
import types

try:
    from ansible_test._internal.python_requirements import get_venv_packages
    pip_version = get_venv_packages(types.SimpleNamespace(version=sys.argv[1]))['pip']
except Exception:  # a later ansible-test may change that function: read its default instead
    import ansible_test
    source = open(os.path.join(os.path.dirname(ansible_test.__file__), '_internal', 'python_requirements.py')).read()
    pip_version = re.search(r"pip='([0-9.]+)'", source).group(1)
print(os.path.expanduser('~/.ansible/test/cache/get_pip_%s.py' % pip_version.replace('.', '_')))
PYEOF
}

STANDIN="$(standin_path)"

# ansible-test keeps its sanity venvs in ~/.ansible/test/venv, shared by every checkout of
# this user; two runs creating the same venv at once break each other ("Directory not
# empty"): one sanity.sh run at a time.
LOCK="$(dirname "$(dirname "$STANDIN")")/cnm-sanity.lock"
mkdir -p "$(dirname "$LOCK")"
exec 9>"$LOCK"
if ! flock -n 9; then
    say "waiting for another sanity run to finish (lock $LOCK)"
    flock -w 1800 9 || { say "ERROR: gave up waiting for $LOCK"; exit 1; }
fi

install_standin "$STANDIN"

# --- the copy ----------------------------------------------------------------------------
WORK="$(mktemp -d "${TMPDIR:-/tmp}/cnm-sanity.XXXXXX")"
# shellcheck disable=SC2317  # called by the trap
cleanup() {
    if [ "${CNM_SANITY_KEEP:-0}" = 1 ]; then
        say "kept the copy: $WORK/ansible_collections/cnm/network"
    else
        rm -rf "$WORK"
    fi
}
trap cleanup EXIT
COPY="$WORK/ansible_collections/cnm/network"
mkdir -p "$COPY"

if git -C "$ROOT" rev-parse --is-inside-work-tree >/dev/null 2>&1; then
    # -c lists tracked files deleted in the work tree too: copy only what exists.
    git -C "$ROOT" ls-files -z -co --exclude-standard |
        while IFS= read -r -d '' f; do
            if [ -e "$f" ] || [ -L "$f" ]; then printf '%s\0' "$f"; fi
        done |
        tar -C "$ROOT" --null -T - -cf - | tar -C "$COPY" -xf -
else
    tar -C "$ROOT" --exclude=./.venv --exclude=./.lab --exclude=./tests/output --exclude='*.tar.gz' \
        --exclude=__pycache__ --exclude=.pytest_cache -cf - . | tar -C "$COPY" -xf -
fi
say "copied $(find "$COPY" -type f | wc -l) files to $COPY"

# --- run ---------------------------------------------------------------------------------
ARGS=(sanity --python "$PY_VERSION" --color no)
for t in "${SKIP_TESTS[@]}"; do
    ARGS+=(--skip-test "$t")
done
ARGS+=("$@")

LOG="$WORK/ansible-test.log"
run_sanity() {
    say "running: ansible-test ${ARGS[*]}"
    set +e
    (cd "$COPY" && PATH="$VENV/bin:$PATH" "$VENV/bin/ansible-test" "${ARGS[@]}") 2>&1 | tee "$LOG"
    local rc="${PIPESTATUS[0]}"
    set -e
    return "$rc"
}

rc=0
run_sanity || rc=$?
if [ "$rc" -ne 0 ] && grep -q 'does not have pip available' "$LOG"; then
    # The predicted cache name was wrong (a newer ansible-test?): use the one it printed.
    wanted="$(sed -n 's/^The bootstrap script can be manually downloaded and saved to: //p' "$LOG" | tail -n1)"
    if [ -n "$wanted" ] && [ ! -f "$wanted" ]; then
        install_standin "$wanted"
        rc=0
        run_sanity || rc=$?
    fi
fi
if [ "$rc" -eq 0 ]; then
    say "passed"
else
    say "FAILED (exit $rc)"
fi
exit "$rc"
