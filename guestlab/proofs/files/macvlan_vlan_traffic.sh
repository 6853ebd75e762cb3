#!/usr/bin/env bash
# Traffic of the macvlan_vlan proof, run on the first guest:
#   macvlan_vlan_traffic.sh NETNS_PREFIX PEER_IPS OWN_IPS   (comma-separated lists)
# Each endpoint (namespaces PREFIXa, PREFIXb) pings every peer endpoint of the other guest over
# VLAN 10; endpoint a opens TCP to the first peer's port 7010 (a one-shot server there); the guest
# itself reaches its own endpoints through the host-access shim; the endpoints do not reach the
# untagged sandbox 10.10.0.200 on plain eth1. One line per check; exit 1 if any check failed.
# shellcheck disable=SC2317  # check runs the functions
set -u
prefix="$1"
IFS=, read -r -a peers <<<"$2"
IFS=, read -r -a own <<<"$3"
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

for ns in a b; do
    for ip in "${peers[@]}"; do
        check pass "endpoint $ns -> $ip (other guest, VLAN 10) ping" in_ns "$ns" ping -c 2 -i 0.3 -W 3 "$ip"
    done
done
tcp_client() {
    for _ in $(seq 60); do
        if [ "$(in_ns a python3 -c "import socket; print(socket.create_connection(('${peers[0]}', 7010), timeout=3).recv(32).decode())" 2>/dev/null)" = cnm-vlan10-ok ]; then
            return 0
        fi
        sleep 0.5
    done
    return 1
}
check pass "endpoint a -> ${peers[0]}:7010 (other guest, VLAN 10) TCP" tcp_client
for ip in "${own[@]}"; do
    check pass "this guest -> its endpoint $ip (host-access shim) ping" ping -c 1 -W 3 "$ip"
done
check fail "endpoint a -> 10.10.0.200 (untagged sandbox on plain eth1) ping" in_ns a ping -c 2 -i 0.3 -W 2 10.10.0.200
exit "$failed"
