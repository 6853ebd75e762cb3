#!/usr/bin/env bash
# The test command of cnm.network: bash scripts/test.sh [STAGE ...]
#
# Stages, in this order (no arguments: all of them):
#   setup        scripts/setup.sh: Debian packages, .venv, requirements, collection link
#                (always runs first, also when not named: the other stages need .venv; it
#                takes well under a second when everything is in place)
#   lint         scripts/lint.sh: ruff, ansible-lint (production profile), shellcheck
#   unit         pytest tests/unit
#   integration  pytest tests/integration (as root: real kernel objects in throwaway
#                namespaces) in 2 pytest-xdist workers, a test file at a time each (--dist
#                loadfile: a file's shared lab is built once); CNM_TEST_JOBS=N asks for N
#                workers, CNM_TEST_JOBS=1 runs serially (the default on a one-CPU machine)
#   molecule     molecule test: the default scenario (create and destroy the lab, converge the
#                main job with the cnm_prepare role, idempotence, verify with real traffic)
#   compat       the oldest supported controller (meta/runtime.yml's requires_ansible):
#                ansible-core 2.16 on Python 3.11 (in .venv-2.16) runs the lab, playbook and
#                README-example tests, the modules under that bare Python 3.11; in CNM_TEST_JOBS
#                workers too (the files in parallel). The other stages run .venv's newest ansible-core
#   sanity       scripts/sanity.sh: ansible-test sanity --python 3.12 on a copy of the tree
#   build        ansible-galaxy collection build of a copy of the tree (git-tracked plus
#                untracked non-ignored files, i.e. what a clean clone plus your work holds)
#                into a temp dir, then ansible-galaxy collection install --offline of the
#                tarball into another temp dir, ansible-doc over the installed collection, and
#                scripts/docs.sh: its docs site (antsibull-docs, Sphinx warnings as errors, offline)
#                and antsibull-docs' lint of its plugin docs
#   guest        bash guestlab/ci.sh: the guest lab (Debian kernels under qemu, over SSH) boots
#                once, runs the CI set of proofs in guestlab/proofs/ (what this kernel lacks: ESP,
#                802.1Q, ipvlan, systemd and reboots; GUESTLAB_ALL=1 runs every proof) and stops;
#                when this machine cannot boot guests it passes with the note "skipped: REASON"
#
# Named stages run in the order above, e.g. `bash scripts/test.sh unit integration`.
# Stops at the first failing stage (non-zero exit) and prints one summary line per stage
# with its time. pytest's exit code 5 ("no tests collected") counts as a pass, reported as
# "no tests". Extra pytest options: PYTEST_ADDOPTS.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)"
cd "$ROOT"
VENV="$ROOT/.venv"

ALL_STAGES=(setup lint unit integration molecule compat sanity build guest)

usage() {
    sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed -e '$d' -e 's/^# \{0,1\}//'
}

want=()
for arg in "$@"; do
    case "$arg" in
        -h | --help) usage; exit 0 ;;
        setup | lint | unit | integration | molecule | compat | sanity | build | guest) want+=("$arg") ;;
        *) echo "test.sh: unknown stage '$arg' (stages: ${ALL_STAGES[*]})" >&2; exit 2 ;;
    esac
done
[ "${#want[@]}" -gt 0 ] || want=("${ALL_STAGES[@]}")

selected() {
    local s
    [ "$1" = setup ] && return 0
    for s in "${want[@]}"; do [ "$s" = "$1" ] && return 0; done
    return 1
}

banner() { printf '\n==== test.sh: %s ====\n' "$*"; }

TMP_DIRS=()
# shellcheck disable=SC2317  # called by the trap
cleanup() {
    local d
    for d in "${TMP_DIRS[@]}"; do rm -rf "$d"; done
}
trap cleanup EXIT

# --- stages ------------------------------------------------------------------------------
NOTE=""  # a stage may set a note for the summary (e.g. "no tests")

stage_setup() { bash "$ROOT/scripts/setup.sh"; }
stage_lint() { bash "$ROOT/scripts/lint.sh"; }
stage_sanity() { bash "$ROOT/scripts/sanity.sh"; }

run_pytest() {  # $1 = test directory, then pytest options
    local dir="$1" rc=0
    shift
    if [ ! -d "$dir" ]; then
        NOTE="no tests ($dir missing)"
        echo "test.sh: $dir does not exist: no tests to run"
        return 0
    fi
    "$VENV/bin/python" -m pytest -p no:cacheprovider "$@" "$dir" || rc=$?
    if [ "$rc" -eq 5 ]; then
        NOTE="no tests (collected none)"
        echo "test.sh: pytest collected no test in $dir"
        return 0
    fi
    return "$rc"
}

stage_unit() { run_pytest tests/unit; }

# pytest-xdist options for CNM_TEST_JOBS workers (default 2, 1 on a one-CPU machine) into the array JOBS, and
# the NOTE. Every test makes its namespaces with a prefix unique to its worker, so workers cannot meet; whole
# files go to a worker (loadfile), so a lab a file shares between its tests is built once, not once per worker.
JOBS=()
test_jobs() {
    local n="${CNM_TEST_JOBS:-}"
    if [ -z "$n" ]; then
        n=1
        [ "$(nproc 2>/dev/null || echo 1)" -lt 2 ] || n=2
    fi
    JOBS=()
    if [ "$n" != 1 ]; then
        JOBS=(-n "$n" --dist loadfile)
        NOTE="$n workers"
    fi
}

stage_integration() {
    if [ "$(id -u)" -ne 0 ]; then
        echo "test.sh: integration tests need root (network namespaces, netlink, nftables)" >&2
        return 1
    fi
    test_jobs
    run_pytest tests/integration "${JOBS[@]}"
}

stage_molecule() {
    if [ "$(id -u)" -ne 0 ]; then
        echo "test.sh: molecule's lab needs root (network namespaces)" >&2
        return 1
    fi
    # molecule (ansible-compat) runs ansible-config and ansible-playbook from PATH; the collection
    # is this checkout's (ansible-compat would otherwise install a copy into ~/.ansible/collections).
    PATH="$VENV/bin:$PATH" ANSIBLE_COLLECTIONS_PATH="$VENV/collections" "$VENV/bin/molecule" test --all
}

stage_compat() {
    # The oldest ansible-core meta/runtime.yml's requires_ansible admits (tests/unit/test_packaging.py checks both).
    local oldest=2.16 py="" candidate venv
    venv="$ROOT/.venv-$oldest"
    for candidate in python3.11 /root/.pyenv/versions/3.11*/bin/python /usr/bin/python3.11; do
        if "$candidate" -c 'import sys, venv; sys.exit(sys.version_info[:2] != (3, 11))' >/dev/null 2>&1; then
            py="$candidate"
            break
        fi
    done
    if [ -z "$py" ]; then
        echo "test.sh: no Python 3.11 with venv found for the ansible-core $oldest check" >&2
        return 1
    fi
    if [ ! -x "$venv/bin/ansible-playbook" ] || ! "$venv/bin/python" -c 'import pytest, xdist' >/dev/null 2>&1; then
        "$py" -m venv "$venv" || return
        "$venv/bin/pip" install -q "ansible-core~=$oldest.0" pytest pytest-xdist || return
    fi
    test_jobs
    NOTE="$("$venv/bin/ansible" --version | head -n1)${NOTE:+, $NOTE}"
    # Nothing but ansible-core in this venv: the modules need no library.
    ANSIBLE_PLAYBOOK="$venv/bin/ansible-playbook" "$venv/bin/python" -m pytest -p no:cacheprovider -o addopts="" \
        "${JOBS[@]}" tests/integration/test_lab.py tests/integration/test_playbooks.py \
        tests/integration/test_readme_examples.py
}

copy_tree() {  # $1 = destination: the checkout's files as a clean clone plus work in progress has them
    mkdir -p "$1" || return
    if git rev-parse --is-inside-work-tree >/dev/null 2>&1; then
        git ls-files -z -co --exclude-standard |
            while IFS= read -r -d '' f; do
                if [ -e "$f" ] || [ -L "$f" ]; then printf '%s\0' "$f"; fi
            done |
            tar --null -T - -cf - | tar -C "$1" -xf -
    else
        tar --exclude=./.venv --exclude=./.lab --exclude=./tests/output --exclude='*.tar.gz' \
            --exclude=__pycache__ --exclude=.pytest_cache -cf - . | tar -C "$1" -xf -
    fi
}

# The stage functions run in an `||` list, where bash ignores `set -e`: every step that can
# fail carries its own `|| return`.
stage_build() {
    local work src out dest tarball
    work="$(mktemp -d "${TMPDIR:-/tmp}/cnm-build.XXXXXX")" || return
    TMP_DIRS+=("$work")
    src="$work/src" out="$work/dist" dest="$work/installed"
    copy_tree "$src" || return
    mkdir -p "$out" "$dest" || return
    "$VENV/bin/ansible-galaxy" collection build --output-path "$out" "$src" || return
    tarball="$(find "$out" -maxdepth 1 -name 'cnm-network-*.tar.gz' | head -n1)"
    if [ -z "$tarball" ]; then
        echo "test.sh: no tarball in $out" >&2
        return 1
    fi
    echo "test.sh: built $(basename "$tarball") ($(du -k "$tarball" | cut -f1) KiB, $(tar -tzf "$tarball" | wc -l) entries)"
    # Install and look only at the temp dir: an empty config, outside the checkout (whose
    # ansible.cfg points at .venv/collections, i.e. at the checkout itself, and ansible-galaxy
    # would then find cnm.network "already installed" and do nothing).
    : >"$work/ansible.cfg"
    (
        cd "$work" &&
            export ANSIBLE_CONFIG="$work/ansible.cfg" ANSIBLE_COLLECTIONS_PATH="$dest" &&
            "$VENV/bin/ansible-galaxy" collection install --offline -p "$dest" "$tarball" &&
            "$VENV/bin/ansible-galaxy" collection list cnm.network &&
            "$VENV/bin/ansible-doc" --list cnm.network &&
            bash "$ROOT/scripts/docs.sh" "$work/docs-site"
    ) || return
    NOTE="$(basename "$tarball"), docs site"
}

stage_guest() {
    local note rc=0
    note="$(mktemp "${TMPDIR:-/tmp}/cnm-guest-note.XXXXXX")" || return
    TMP_DIRS+=("$note")
    bash "$ROOT/guestlab/ci.sh" --note-file "$note" || rc=$?
    NOTE="$(head -n1 "$note")"
    return "$rc"
}

# --- run ---------------------------------------------------------------------------------
SUMMARY=()
summary() {
    local line
    printf '\n==== test.sh summary ====\n'
    for line in "${SUMMARY[@]}"; do printf '%s\n' "$line"; done
}

for stage in "${ALL_STAGES[@]}"; do
    selected "$stage" || continue
    banner "$stage"
    NOTE=""
    start="$(date +%s.%N)"
    rc=0
    "stage_$stage" || rc=$?
    secs="$(awk -v a="$start" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')"
    if [ "$rc" -eq 0 ]; then status=ok; else status="FAILED (exit $rc)"; fi
    SUMMARY+=("$(printf '%-12s %-16s %7ss  %s' "$stage" "$status" "$secs" "$NOTE")")
    if [ "$rc" -ne 0 ]; then
        summary
        exit "$rc"
    fi
done
summary
