#!/usr/bin/env bash
# The LAN side of the bridge/ports proof, run on another guest: bridge_lan.sh HOST_IP [HOST_IP6]
# shellcheck disable=SC2317  # check runs the functions
# This guest plays a LAN machine that routes the web network's subnets (172.30.0.0/24,
# fd00:30::/64) through the guest HOST_IP: only published ports may get through (Docker 28 drops
# every packet to a container address that did not come in on its bridge), while the host's own
# address on the bridge answers (Docker filters no INPUT). The routes are removed on exit.
# Prints one line per check and exits 1 if any check did not give what was expected.
set -u
host_ip="$1" host_ip6="${2:-}"
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
http_get() {  # URL: status 200
    python3 -c "import sys, urllib.request; sys.exit(urllib.request.urlopen('$1', timeout=4).status != 200)"
}
cleanup() {
    ip route del 172.30.0.0/24 via "$host_ip" 2>/dev/null
    if [ -n "$host_ip6" ]; then ip -6 route del fd00:30::/64 via "$host_ip6" 2>/dev/null; fi
    return 0
}
trap cleanup EXIT
ip route add 172.30.0.0/24 via "$host_ip"
[ -n "$host_ip6" ] && ip -6 route add fd00:30::/64 via "$host_ip6"

check pass "LAN -> $host_ip:8080 (published web1:80)" http_get "http://$host_ip:8080/"
check pass "LAN -> gateway 172.30.0.1 ping (the route works; the host's address answers)" ping -c 1 -W 2 172.30.0.1
check fail "LAN -> web1 172.30.0.2:80 (a published container port, directly: Docker drops it)" http_get "http://172.30.0.2:80/"
check fail "LAN -> web1 172.30.0.2:81 (an unpublished port: Docker drops it)" http_get "http://172.30.0.2:81/"
check fail "LAN -> web1 172.30.0.2 ping (any protocol: Docker drops it)" ping -c 1 -W 2 172.30.0.2
if [ -n "$host_ip6" ]; then
    check pass "LAN -> [$host_ip6]:8080 (IPv6, published web1:80)" http_get "http://[$host_ip6]:8080/"
    check pass "LAN -> gateway fd00:30::1 ping (IPv6 route works)" ping -6 -c 1 -W 2 fd00:30::1
    check fail "LAN -> web1 [fd00:30::2]:80 (IPv6, directly: Docker drops it)" http_get "http://[fd00:30::2]:80/"
    check fail "LAN -> web1 [fd00:30::2]:81 (IPv6, unpublished: Docker drops it)" http_get "http://[fd00:30::2]:81/"
    check fail "LAN -> web1 fd00:30::2 ping (IPv6, any protocol: Docker drops it)" ping -6 -c 1 -W 2 fd00:30::2
fi
exit "$failed"
