#!/usr/bin/env bash
# Real traffic for the bridge/ports proof, run on the guest:
#   bridge_traffic.sh PREFIX HOST_IP [HOST_IP6 [PEER_IP6]]
# shellcheck disable=SC2317  # check runs the functions
# Prints one line per check and exits 1 if any check did not give what was expected. Leaves HTTP
# servers in web1 on port 80 (published as 8080) and 81 (never published), pids in
# /run/cnmgl-bp-http.pid and /run/cnmgl-bp-http81.pid, for the checks from another guest (the LAN).
# With HOST_IP6 (an IPv6 address of this guest) the published port is also checked over IPv6
# (a plain 8080:80 binds both families, as Docker 27+ does); with PEER_IP6 (another guest's) a
# container pings out over IPv6 (forwarding and masquerade of the IPv6 subnet).
set -u
prefix="$1" host_ip="$2" host_ip6="${3:-}" peer_ip6="${4:-}"
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
# Names (dns: true): glibc in web1, through the resolv.conf that ip netns exec mounts, asks the gateway.
resolves() {  # NETNS NAME ADDRESS: NAME resolves to ADDRESS (and only it) in NETNS
    [ "$(ip netns exec "$prefix$1" getent ahostsv4 "$2" | awk '{ print $1 }' | sort -u)" = "$3" ]
}
check pass "web1 resolves web2's alias api to 172.30.0.3" resolves web1 api 172.30.0.3
check pass "web2 resolves ${prefix}web1 (its name) to 172.30.0.2" resolves web2 "${prefix}web1" 172.30.0.2
check pass "web1 resolves ${prefix}web2.web (NAME.NETWORK)" resolves web1 "${prefix}web2.web" 172.30.0.3
check fail "web1 resolves nosuchname" resolves web1 nosuchname 172.30.0.3
check pass "web1 -> api ping, by name" ip netns exec "${prefix}web1" ping -c 1 -W 2 api
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

# The published port: an HTTP server in web1 on port 80 (both families), reached through the
# host's port 8080; another on port 81, never published, for the LAN checks.
for port in 80 81; do
    pidfile=/run/cnmgl-bp-http.pid
    [ "$port" = 81 ] && pidfile=/run/cnmgl-bp-http81.pid
    setsid nsenter --net="/run/netns/${prefix}web1" timeout 600 python3 -m http.server --bind :: "$port" </dev/null >/dev/null 2>&1 &
    echo $! >"$pidfile"
    for _ in $(seq 100); do
        in_ns web1 python3 -c "import socket; socket.create_connection(('127.0.0.1', $port), timeout=1)" 2>/dev/null && break
        sleep 0.2
    done
done
check pass "guest -> 127.0.0.1:8080 (published web1:80)" http_get "http://127.0.0.1:8080/"
check pass "guest -> $host_ip:8080 (published web1:80)" http_get "http://$host_ip:8080/"
check pass "web2 -> $host_ip:8080 (another container)" in_ns web2 python3 -c \
    "import sys, urllib.request; sys.exit(urllib.request.urlopen('http://$host_ip:8080/', timeout=5).status != 200)"
check pass "web1 -> $host_ip:8080 (hairpin, its own published port)" in_ns web1 python3 -c \
    "import sys, urllib.request; sys.exit(urllib.request.urlopen('http://$host_ip:8080/', timeout=5).status != 200)"
check pass "guest -> web1 172.30.0.2:81 (the host reaches unpublished ports directly)" http_get "http://172.30.0.2:81/"
if [ -n "$host_ip6" ]; then
    check pass "guest -> [$host_ip6]:8080 (IPv6, a plain 8080:80 binds both families)" http_get "http://[$host_ip6]:8080/"
    check pass "guest -> web1 [fd00:30::2]:81 (IPv6, the host reaches containers directly)" http_get "http://[fd00:30::2]:81/"
    check pass "web2 -> [$host_ip6]:8080 (IPv6, another container)" in_ns web2 python3 -c \
        "import sys, urllib.request; sys.exit(urllib.request.urlopen('http://[$host_ip6]:8080/', timeout=5).status != 200)"
    check pass "web1 -> [$host_ip6]:8080 (IPv6 hairpin, its own published port)" in_ns web1 python3 -c \
        "import sys, urllib.request; sys.exit(urllib.request.urlopen('http://[$host_ip6]:8080/', timeout=5).status != 200)"
    check fail "guest -> [::1]:8080 (IPv6 loopback cannot be DNAT'd: a documented difference from Docker)" \
        http_get "http://[::1]:8080/"
fi
if [ -n "$peer_ip6" ]; then
    # The peer has no route to fd00:30::/64 yet: only a masqueraded echo can come back.
    check pass "web1 -> $peer_ip6 ping (IPv6 forwarded out and masqueraded)" in_ns web1 ping -6 -c 1 -W 3 "$peer_ip6"
fi
exit "$failed"
