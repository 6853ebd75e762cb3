#!/usr/bin/env bash
# The resolver as systemd's service on the guest (the reboot proof; cnm_prepare installed cnm-dns.service):
#   resolver_service.sh running NETNS_A NETNS_B ADDRESS_B   cnm-dns.service is active and its main process is the
#                                                           aardvark-dns of /run/cnm-network/dns
#   resolver_service.sh restart NETNS_A NETNS_B ADDRESS_B   that, then its process killed (SIGKILL): systemd starts
#                                                           it again (Restart=on-failure) and NETNS_A resolves
#                                                           NETNS_B's name to ADDRESS_B, with no play run
#   resolver_service.sh stopped                             the unit is inactive and no aardvark-dns runs
# Prints one line per check; exit 1 if one failed. Waits are on conditions, 30 s at most.
# shellcheck disable=SC2317  # running, restarted and stopped are called through check
set -u
mode="$1" ns_a="${2:-}" ns_b="${3:-}" address_b="${4:-}"
unit=cnm-dns.service
failed=0
main_pid() { systemctl show -p MainPID --value "$unit"; }
check() {  # LABEL COMMAND...: pass or fail, with the command's output
    local label="$1" out
    shift
    if out="$("$@" 2>&1)"; then
        echo "$label: pass${out:+ ($out)}"
    else
        echo "$label: fail${out:+ ($out)}"
        failed=1
    fi
}
running() {
    local state pid file_pid
    state="$(systemctl is-active "$unit")"
    pid="$(main_pid)"
    file_pid="$(cat /run/cnm-network/dns/aardvark.pid 2>/dev/null)"
    echo "$state, main pid $pid, pid file $file_pid, $(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null)"
    [ "$state" = active ] && [ "$pid" -gt 0 ] && [ "$pid" = "$file_pid" ]
}
restarted() {  # OLD_PID: active again with another main process, and the name resolves
    local old="$1" found=""
    for _ in $(seq 300); do
        if [ "$(systemctl is-active "$unit")" = active ] && [ "$(main_pid)" != "$old" ] && [ "$(main_pid)" != 0 ]; then
            found="$(ip netns exec "$ns_a" getent ahostsv4 "$ns_b" | awk '{ print $1 }' | sort -u)"
            [ "$found" = "$address_b" ] && break
        fi
        sleep 0.1
    done
    echo "main pid $old -> $(main_pid), restarts $(systemctl show -p NRestarts --value "$unit"); $ns_b -> ${found:-nothing}"
    [ "$found" = "$address_b" ] && [ "$(main_pid)" != "$old" ]
}
stopped() {
    local state
    state="$(systemctl is-active "$unit")"
    echo "$state; aardvark-dns processes: $(pgrep -c -x aardvark-dns)"
    [ "$state" != active ] && ! pgrep -x aardvark-dns >/dev/null
}

case "$mode" in
    running) check "$unit runs aardvark-dns" running ;;
    restart)
        check "$unit runs aardvark-dns" running
        old="$(main_pid)"
        kill -KILL "$old"
        check "killed, systemd starts it again and $ns_a resolves $ns_b" restarted "$old"
        ;;
    stopped) check "$unit stopped" stopped ;;
    *) echo "usage: resolver_service.sh running|restart|stopped [NETNS_A NETNS_B ADDRESS_B]" >&2; exit 2 ;;
esac
exit "$failed"
