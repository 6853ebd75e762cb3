#!/usr/bin/env bash
# A shell (or one command) on a guest of the running lab: bash guestlab/ssh.sh g1 [COMMAND ...]
set -euo pipefail
# shellcheck source=guestlab/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

guest="${1:-}"
[[ "$guest" =~ ^g[1-9]$ ]] || die "usage: bash guestlab/ssh.sh gN [COMMAND ...]"
shift
[ -f "$GUESTLAB_STATE/ssh-options" ] || die "the lab $GUESTLAB_PREFIX is not up (bash guestlab/up.sh)"
mapfile -t ssh_opts <"$GUESTLAB_STATE/ssh-options"
exec ssh "${ssh_opts[@]}" "root@$GUESTLAB_MGMT_NET.$((10 + ${guest#g}))" "$@"
