#!/usr/bin/env bash
# Stop the guest lab and remove everything it made: bash guestlab/down.sh [--quiet]
#
# The qemu processes are stopped by the PIDs in their pid files (only a process whose command
# line names this lab's guest is signalled), then the taps, the namespace PREFIX-mgmt and the
# runtime directory go. ssh multiplexing is off in the lab's inventory; a control socket left in
# the runtime directory by a hand-made ssh (ControlPath there) is told to exit all the same.
# Safe to run when nothing or only part of the lab exists.
set -euo pipefail
# shellcheck source=guestlab/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

quiet=false
[ "${1:-}" = --quiet ] && quiet=true
[ "$(id -u)" -eq 0 ] || die "down.sh needs root"
note() { $quiet || say "$*"; }

stopped=0
if [ -d "$GUESTLAB_STATE" ]; then
    for pidfile in "$GUESTLAB_STATE"/*.pid; do
        [ -e "$pidfile" ] || continue
        guest="$(basename "$pidfile" .pid)"
        pid="$(cat "$pidfile" 2>/dev/null || true)"
        if [[ "$pid" =~ ^[0-9]+$ ]] && [ -r "/proc/$pid/cmdline" ] &&
            tr '\0' ' ' <"/proc/$pid/cmdline" | grep -q -- "-name $GUESTLAB_PREFIX-$guest "; then
            kill -TERM "$pid" 2>/dev/null || true
            for _ in $(seq 50); do
                [ -e "/proc/$pid" ] || break
                sleep 0.1
            done
            if [ -e "/proc/$pid" ]; then
                note "qemu of $guest (pid $pid) ignored SIGTERM: SIGKILL"
                kill -KILL "$pid" 2>/dev/null || true
            fi
            stopped=$((stopped + 1))
        fi
    done
    for socket in "$GUESTLAB_STATE"/cp-*; do
        [ -S "$socket" ] || continue
        ssh -o ControlPath="$socket" -O exit guest >/dev/null 2>&1 || true
    done
fi

if [ -e "/run/netns/$GUESTLAB_NETNS" ]; then
    # Taps first: a device of a namespace being deleted may otherwise outlive the deletion call.
    ip -n "$GUESTLAB_NETNS" -o link show type tun 2>/dev/null | awk -F': ' '{ print $2 }' | cut -d@ -f1 |
        while read -r tap; do ip -n "$GUESTLAB_NETNS" link delete "$tap" || true; done
    ip netns delete "$GUESTLAB_NETNS"
fi
rm -rf "$GUESTLAB_STATE"
rmdir "$(dirname "$GUESTLAB_STATE")" 2>/dev/null || true
note "stopped $stopped guest(s); namespace $GUESTLAB_NETNS and $GUESTLAB_STATE removed"
