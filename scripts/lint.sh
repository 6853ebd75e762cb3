#!/usr/bin/env bash
# Static checks, with the tools in .venv:
#   ruff check           plugins/ tests/ bench/   (config: pyproject.toml [tool.ruff]: 120 columns)
#   ruff format --check  plugins/ tests/ bench/ guestlab/   (the layout `ruff format` gives; run it to fix)
#   ansible-lint         roles/ playbooks/ molecule/ guestlab/proofs/ galaxy.yml  (config: .ansible-lint, profile production)
#   the shellcheck tool  scripts/*.sh .ci/run guestlab's scripts  (when it is installed)
#   antsibull-changelog  lint of changelogs/fragments and changelogs/changelog.yaml
#   ansible-builder      execution-environment.yml is a valid EE definition (its build context
#                        is made in a temp dir: no container runtime needed); bindep.txt parses
#                        for the execution environment (no profile) and for managed nodes (node)
# Directories that do not exist yet are skipped. All checks run; the exit status is non-zero
# if any of them failed.
# Usage: bash scripts/lint.sh
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)"
cd "$ROOT"
VENV="$ROOT/.venv"

say() { printf 'lint: %s\n' "$*"; }

if [ ! -x "$VENV/bin/ruff" ] || [ ! -x "$VENV/bin/ansible-lint" ] || [ ! -x "$VENV/bin/antsibull-changelog" ] ||
    [ ! -x "$VENV/bin/ansible-builder" ] || [ ! -x "$VENV/bin/bindep" ]; then
    say ".venv lacks a lint tool (requirements-dev.txt); running scripts/setup.sh"
    bash "$ROOT/scripts/setup.sh"
fi
# ansible-lint runs ansible-playbook --syntax-check and warns when its own bin dir is not on PATH.
export PATH="$VENV/bin:$PATH"
# Lint this checkout's collection, never a copy that a tool installed earlier: molecule's
# ansible-compat installs the project collection into ~/.ansible/collections, where an old copy
# would hide new plugins from ansible-lint's syntax check.
export ANSIBLE_COLLECTIONS_PATH="$VENV/collections"
stale="${HOME:-/root}/.ansible/collections/ansible_collections/cnm/network"
if [ -d "$stale" ] && [ ! -L "$stale" ]; then
    say "removing a copy of this collection installed by a tool: $stale"
    rm -rf "$stale"
fi

existing() {  # print the arguments that exist
    local p
    for p in "$@"; do
        if [ -e "$p" ]; then printf '%s\n' "$p"; fi
    done
}

failed=()

mapfile -t py_dirs < <(existing plugins tests bench)
if [ "${#py_dirs[@]}" -gt 0 ]; then
    say "ruff check ${py_dirs[*]}"
    ruff check --no-cache "${py_dirs[@]}" || failed+=(ruff)
    say "ruff format --check ${py_dirs[*]} guestlab"
    ruff format --check --no-cache "${py_dirs[@]}" guestlab || failed+=("ruff format")
else
    say "ruff: nothing to check yet"
fi

# ansible-lint needs YAML to look at; an empty roles/ (or none at all, as in a fresh clone
# before the first role) is not an error.
mapfile -t yaml_dirs < <(for d in roles playbooks molecule guestlab/proofs; do
    if [ -d "$d" ] && [ -n "$(find "$d" -name '*.yml' -o -name '*.yaml' | head -n1)" ]; then echo "$d"; fi
done)
if [ "${#yaml_dirs[@]}" -gt 0 ]; then
    # galaxy.yml too: ansible-lint's galaxy rule (tags, changelog, runtime.yml).
    say "ansible-lint --profile production ${yaml_dirs[*]} galaxy.yml"
    ansible-lint --profile production "${yaml_dirs[@]}" galaxy.yml || failed+=(ansible-lint)
else
    say "ansible-lint: no roles or playbooks yet"
fi

if command -v shellcheck >/dev/null 2>&1; then
    mapfile -t shell_files < <(existing scripts/*.sh .ci/run guestlab/*.sh guestlab/files/guest-init guestlab/proofs/files/*.sh)
    if [ "${#shell_files[@]}" -gt 0 ]; then
        say "shellcheck ${shell_files[*]}"
        shellcheck "${shell_files[@]}" || failed+=(shellcheck)
    fi
else
    say "shellcheck not installed (scripts/setup.sh installs it): skipped"
fi

say "antsibull-changelog lint (changelogs/fragments, changelogs/changelog.yaml)"
{ antsibull-changelog lint && antsibull-changelog lint-changelog-yaml changelogs/changelog.yaml; } || failed+=(changelog)

ee_context="$(mktemp -d "${TMPDIR:-/tmp}/cnm-ee-lint.XXXXXX")"
# shellcheck disable=SC2064  # expand now: the path is fixed
trap "rm -rf '$ee_context'" EXIT
say "ansible-builder create (execution-environment.yml, context in a temp dir); bindep.txt parses"
if ansible-builder create -f execution-environment.yml -c "$ee_context/context" >"$ee_context/log" 2>&1; then
    # bindep exits 2 on a parse error, 1 when packages are missing (not our business here).
    for profile in default node; do
        rc=0
        bindep -f bindep.txt -l newline "$profile" >/dev/null || rc=$?
        if [ "$rc" -eq 2 ]; then
            say "bindep.txt does not parse (profile $profile)"
            failed+=(bindep)
            break
        fi
    done
else
    cat "$ee_context/log" >&2
    failed+=(execution-environment)
fi

if [ "${#failed[@]}" -gt 0 ]; then
    say "FAILED: ${failed[*]}"
    exit 1
fi
say "passed"
