#!/usr/bin/env bash
# shellcheck disable=SC2317  # check runs the functions
# Real traffic for the overlay proof, run on each guest:
#   overlay_traffic.sh LOCAL_IPS CLIENT_NETNS SERVER_NETNS REMOTE_IP...
# LOCAL_IPS: this guest's endpoint addresses, comma-separated (the server binds the second);
# starts a TCP server in SERVER_NETNS (pid in /run/cnmgl-ov-tcp.pid, left running for the other
# guests' clients), connects from CLIENT_NETNS to every REMOTE_IP (the other guests' servers,
# retrying while they start), and sends don't-fragment pings at the overlay MTU to the first.
# Prints one line per check; exits 1 if any check did not give what was expected.
set -u
local_ips="$1" client="$2" server="$3"
shift 3
failed=0
check() {  # EXPECTED(pass|fail) DESCRIPTION COMMAND...
    local want="$1" what="$2" got=fail
    shift 2
    if "$@" >/dev/null 2>&1; then got=pass; fi
    if [ "$got" = "$want" ]; then
        echo "$what: $got"
    else
        echo "$what: $got, expected $want"
        failed=1
    fi
}
server_ip="${local_ips#*,}"
setsid nsenter --net="/run/netns/$server" timeout 300 python3 -c '
import socket, sys
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((sys.argv[1], 7000)); s.listen(8)
while True:
    c, _ = s.accept(); c.sendall(socket.gethostname().encode()); c.close()' "$server_ip" </dev/null >/dev/null 2>&1 &
echo $! >/run/cnmgl-ov-tcp.pid

tcp_to() {  # IP: a TCP connection from the client namespace answers (retrying up to 60 s)
    local _
    for _ in $(seq 60); do
        if nsenter --net="/run/netns/$client" python3 -c '
import socket, sys
sys.exit(not socket.create_connection((sys.argv[1], 7000), timeout=3).recv(64))' "$1"; then
            return 0
        fi
        sleep 1
    done
    return 1
}
for ip in "$@"; do
    check pass "$client -> $ip:7000 TCP" tcp_to "$ip"
done
if [ $# -gt 0 ]; then
    check pass "$client -> $1 1450-byte packet, don't fragment" nsenter --net="/run/netns/$client" ping -c 1 -W 3 -M "do" -s 1422 "$1"
    check fail "$client -> $1 1451-byte packet, don't fragment" nsenter --net="/run/netns/$client" ping -c 1 -W 3 -M "do" -s 1423 "$1"
fi
exit "$failed"
