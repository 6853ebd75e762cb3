#!/usr/bin/env bash
# Run a playbook against the running guest lab: bash guestlab/run.sh PLAYBOOK [ansible-playbook options]
#
# Uses the lab's inventory (RUNDIR/inventory.yml: group cnm_lab, over SSH), this checkout's
# collection and .venv's ansible-playbook, and prints the wall time. The exit status is
# ansible-playbook's. Example: bash guestlab/run.sh guestlab/proofs/overlay.yml -v
set -euo pipefail
# shellcheck source=guestlab/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

[ $# -ge 1 ] || die "usage: bash guestlab/run.sh PLAYBOOK [ansible-playbook options]"
playbook="$(realpath -e "$1")" || die "no playbook $1"
shift
inventory="$GUESTLAB_STATE/inventory.yml"
[ -f "$inventory" ] || die "the lab $GUESTLAB_PREFIX is not up ($inventory missing): bash guestlab/up.sh"
venv="$GUESTLAB_ROOT/.venv"
[ -x "$venv/bin/ansible-playbook" ] || die "$venv has no ansible-playbook: bash scripts/setup.sh"

cd "$GUESTLAB_ROOT"
started="$(now)"
rc=0
PATH="$venv/bin:$PATH" ANSIBLE_CONFIG="$GUESTLAB_ROOT/ansible.cfg" ANSIBLE_COLLECTIONS_PATH="$venv/collections" \
    ansible-playbook -i "$inventory" "$playbook" "$@" || rc=$?
say "$(basename "$playbook"): exit $rc after $(since "$started")s"
exit "$rc"
