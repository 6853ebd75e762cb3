#!/usr/bin/env bash
# Real traffic for the bridge/ports proof, run on the guest: bridge_traffic.sh PREFIX HOST_IP
# shellcheck disable=SC2317  # check runs the functions
# Prints one line per check and exits 1 if any check did not give what was expected. Leaves an
# HTTP server in web1 (pid in /run/cnmgl-bp-http.pid) for the check from another guest.
set -u
prefix="$1" host_ip="$2"
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
in_ns() { local ns="$1"; shift; nsenter --net="/run/netns/$prefix$ns" "$@"; }
http_get() {  # URL: status 200
    python3 -c "import sys, urllib.request; sys.exit(urllib.request.urlopen('$1', timeout=5).status != 200)"
}

check pass "web1 -> web2 IPv4" in_ns web1 ping -c 1 -W 2 172.30.0.3
check pass "web1 -> web2 IPv6" in_ns web1 ping -c 1 -W 2 fd00:30::3
check pass "web2 -> gateway 172.30.0.1" in_ns web2 ping -c 1 -W 2 172.30.0.1
check fail "isolated (none) -> web1" in_ns isolated ping -c 1 -W 1 172.30.0.2
check pass "web1 -> web2 1500-byte packet, don't fragment" in_ns web1 ping -c 1 -W 2 -M "do" -s 1472 172.30.0.3
check fail "web1 -> web2 1501-byte packet, don't fragment" in_ns web1 ping -c 1 -W 2 -M "do" -s 1473 172.30.0.3

in_ns web2 timeout 20 python3 -c '
import socket
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("172.30.0.3", 7000)); s.listen(1); c, _ = s.accept(); c.sendall(b"cnm-ok"); c.close()' &
tcp_client() {
    for _ in $(seq 50); do
        if [ "$(in_ns web1 python3 -c 'import socket; print(socket.create_connection(("172.30.0.3", 7000), timeout=2).recv(16).decode())' 2>/dev/null)" = cnm-ok ]; then
            return 0
        fi
        sleep 0.2
    done
    return 1
}
check pass "web1 -> web2 TCP" tcp_client
wait

# The published port: an HTTP server in web1 on port 80, reached through the host's port 8080.
setsid nsenter --net="/run/netns/${prefix}web1" timeout 600 python3 -m http.server 80 </dev/null >/dev/null 2>&1 &
echo $! >/run/cnmgl-bp-http.pid
for _ in $(seq 100); do
    in_ns web1 python3 -c 'import socket; socket.create_connection(("127.0.0.1", 80), timeout=1)' 2>/dev/null && break
    sleep 0.2
done
check pass "guest -> 127.0.0.1:8080 (published web1:80)" http_get "http://127.0.0.1:8080/"
check pass "guest -> $host_ip:8080 (published web1:80)" http_get "http://$host_ip:8080/"
check pass "web2 -> $host_ip:8080 (another container)" in_ns web2 python3 -c \
    "import sys, urllib.request; sys.exit(urllib.request.urlopen('http://$host_ip:8080/', timeout=5).status != 200)"
check pass "web1 -> $host_ip:8080 (hairpin, its own published port)" in_ns web1 python3 -c \
    "import sys, urllib.request; sys.exit(urllib.request.urlopen('http://$host_ip:8080/', timeout=5).status != 200)"
exit "$failed"
