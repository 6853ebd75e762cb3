#!/usr/bin/env bash
# The guest lab in CI: bash guestlab/ci.sh [--note-file FILE] [N]
#
# Boot once, run the proofs, stop: setup.sh (qemu, debootstrap, ... from apt), image.sh (cached
# in /var/cache/cnm-guestlab), up.sh with N guests (default 3), then the proofs in name order
# through run.sh (GUESTLAB_PROOF_TIMEOUT seconds each, default 1500), and down.sh whatever
# happened. After a failed proof the guests are restarted, so the next proof starts on clean guests.
# Which proofs: by default the CI set (CI_PROOFS below: what this machine's kernel cannot show -
# ESP, 802.1Q, ipvlan, systemd and reboots); GUESTLAB_ALL=1 runs every guestlab/proofs/*.yml
# (the CI set plus proofs whose kernel side the namespace lab already covers); GUESTLAB_PROOFS="a b"
# picks some by name.
# The lab's prefix is cnmci (GUESTLAB_PREFIX), so it never meets a lab started by hand (cnmgl).
#
# Exit status 0 when every proof passed, and also when this machine cannot boot guests (not root,
# no /dev/net/tun, qemu or debootstrap not installable, the image cannot be built, a guest does
# not come up): then the reason is printed as "skipped: REASON". 1 when a proof failed or the lab
# broke after it was up. FILE receives one line for a summary: the numbers, or "skipped: REASON".
set -euo pipefail
export GUESTLAB_PREFIX="${GUESTLAB_PREFIX:-cnmci}"
# shellcheck source=guestlab/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

note_file=""
if [ "${1:-}" = --note-file ]; then
    note_file="$2"
    shift 2
fi
count="${1:-${GUESTLAB_GUESTS:-3}}"
proof_timeout="${GUESTLAB_PROOF_TIMEOUT:-1500}"
started="$(now)"
timings=()

note() { [ -z "$note_file" ] || printf '%s\n' "$*" >"$note_file"; }
skip() {
    say "skipped: $*"
    note "skipped: $*"
    exit 0
}
timed() {  # LABEL COMMAND...: run it, remember its wall time
    local label="$1" t rc=0
    shift
    t="$(now)"
    "$@" || rc=$?
    timings+=("$(printf '%-28s %7ss  %s' "$label" "$(since "$t")" "$([ "$rc" -eq 0 ] && echo ok || echo "exit $rc")")")
    return "$rc"
}
report() {
    printf '\n==== guest lab: times (seconds) ====\n'
    printf '%s\n' "${timings[@]}"
    printf '%-28s %7ss\n' total "$(since "$started")"
}

# The CI set: each proof shows what only a Debian kernel or a systemd host can (the others, overlay and
# bridge_ports, repeat on the guests what the namespace lab proves on this kernel; GUESTLAB_ALL=1 adds them).
CI_PROOFS="encrypted_overlay ipvlan macvlan_vlan reboot"
mapfile -t proofs < <(find "$GUESTLAB_DIR/proofs" -maxdepth 1 -name '*.yml' | sort)
wanted="${GUESTLAB_PROOFS:-}"
[ -n "$wanted" ] || [ "${GUESTLAB_ALL:-0}" = 1 ] || wanted="$CI_PROOFS"
if [ -n "$wanted" ]; then
    chosen=()
    for want in $wanted; do
        [ -f "$GUESTLAB_DIR/proofs/${want%.yml}.yml" ] || { note "no proof named ${want%.yml}"; die "no proof named ${want%.yml} in $GUESTLAB_DIR/proofs"; }
    done
    for p in "${proofs[@]}"; do
        for want in $wanted; do
            [ "$(basename "$p" .yml)" = "${want%.yml}" ] && chosen+=("$p")
        done
    done
    proofs=("${chosen[@]}")
fi
# GUESTLAB_SKIP="a b" leaves proofs out of the run (a proof being written, say); by default none is left out.
skip="${GUESTLAB_SKIP:-}"
if [ -n "$skip" ]; then
    kept=()
    for p in "${proofs[@]}"; do
        case " $skip " in *" $(basename "$p" .yml) "*) say "skipped proof $(basename "$p" .yml) (GUESTLAB_SKIP)" ;; *) kept+=("$p") ;; esac
    done
    proofs=("${kept[@]}")
fi
[ "${#proofs[@]}" -gt 0 ] || say "no proofs to run in $GUESTLAB_DIR/proofs"

[ "$(id -u)" -eq 0 ] || skip "the guest lab needs root (namespaces, taps)"
[ -c /dev/net/tun ] || skip "no /dev/net/tun on this machine (the guests' NICs are taps)"
timed setup bash "$GUESTLAB_DIR/setup.sh" || skip "cannot install qemu-system-x86, qemu-utils, debootstrap, cpio, socat (guestlab/setup.sh failed)"
timed image bash "$GUESTLAB_DIR/image.sh" || skip "cannot build the guest image from the Debian archive (guestlab/image.sh failed)"

# A lab left behind by an interrupted run of this script has this script's prefix: remove it.
bash "$GUESTLAB_DIR/down.sh" --quiet

stopped=false
# shellcheck disable=SC2317  # called by the trap
stop_lab() {
    if ! $stopped; then
        bash "$GUESTLAB_DIR/down.sh" || true
        stopped=true
    fi
}
trap stop_lab EXIT

boot() {  # $1 = label; 0 when up, 3 when the guests did not boot, else up.sh failed otherwise
    local rc=0
    timed "$1" bash "$GUESTLAB_DIR/up.sh" "$count" || rc=$?
    return "$rc"
}
rc=0
boot "boot $count guests" || rc=$?
if [ "$rc" -eq 3 ]; then
    report
    skip "the guests did not boot under qemu (TCG) within ${GUESTLAB_BOOT_TIMEOUT}s; see the console lines above"
elif [ "$rc" -ne 0 ]; then
    report
    note "up.sh failed (exit $rc)"
    exit 1
fi
boot_line="$(tail -n1 "$GUESTLAB_STATE/boot-times")"


passed=() failed=()
for p in "${proofs[@]}"; do
    name="$(basename "$p" .yml)"
    printf '\n==== guest lab: proof %s ====\n' "$name"
    if timed "proof $name" timeout --kill-after=30 "$proof_timeout" bash "$GUESTLAB_DIR/run.sh" "$p"; then
        passed+=("$name")
    else
        failed+=("$name")
        if [ "$p" != "${proofs[-1]}" ]; then
            say "proof $name failed: restarting the guests for the next proof"
            bash "$GUESTLAB_DIR/down.sh" --quiet
            if ! boot "reboot $count guests"; then
                report
                note "proof(s) failed: ${failed[*]}; the guests did not come up again"
                exit 1
            fi
        fi
    fi
done

timed down stop_lab
report
summary="$count guests ($boot_line); proofs passed: ${passed[*]:-none}"
if [ "${#failed[@]}" -gt 0 ]; then
    note "FAILED proof(s): ${failed[*]}; $summary"
    say "FAILED proof(s): ${failed[*]}"
    exit 1
fi
note "$summary"
say "$summary"
