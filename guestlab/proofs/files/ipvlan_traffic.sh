#!/usr/bin/env bash
# Traffic of the ipvlan proof, run on the first guest:
#   ipvlan_traffic.sh NETNS_PREFIX L2_PEERS L3_OWN L3_PEERS PEER_UNDERLAY   (lists comma-separated)
# l2: each endpoint of ipl2 (namespaces PREFIXa, PREFIXb) pings every ipl2 endpoint of the other guest
# over VLAN 60. l3: endpoint c pings d (same guest, through the parent), every ipl3 endpoint of the
# other guest (routed by the guests, the LAN's routers here) and the other guest's underlay address,
# all through its default route without gateway. One line per check; exit 1 if any check failed.
# shellcheck disable=SC2317  # check runs the functions
set -u
prefix="$1"
IFS=, read -r -a l2_peers <<<"$2"
IFS=, read -r -a l3_own <<<"$3"
IFS=, read -r -a l3_peers <<<"$4"
underlay="$5"
failed=0
check() {  # DESCRIPTION COMMAND...
    local what="$1"
    shift
    if "$@" >/dev/null 2>&1; then
        echo "$what: pass"
    else
        echo "$what: fail"
        failed=1
    fi
}
in_ns() { local ns="$1"; shift; nsenter --net="/run/netns/$prefix$ns" "$@"; }

for ns in a b; do
    for ip in "${l2_peers[@]}"; do
        check "l2 endpoint $ns -> $ip (other guest, VLAN 60) ping" in_ns "$ns" ping -c 2 -i 0.3 -W 3 "$ip"
    done
done
check "l3 endpoint c -> ${l3_own[1]} (endpoint d, this guest) ping" in_ns c ping -c 2 -i 0.3 -W 3 "${l3_own[1]}"
for ip in "${l3_peers[@]}"; do
    check "l3 endpoint c -> $ip (other guest, routed) ping" in_ns c ping -c 2 -i 0.3 -W 3 "$ip"
done
check "l3 endpoint c -> $underlay (other guest's underlay address) ping" in_ns c ping -c 2 -i 0.3 -W 3 "$underlay"
exit "$failed"
