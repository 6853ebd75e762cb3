#!/usr/bin/env bash
# The untagged side of the macvlan_vlan proof, run on the second guest:
#   macvlan_vlan_untagged.sh NETNS UNDERLAY_PEER VLAN_IPS   (VLAN_IPS comma-separated)
# NETNS holds a macvlan on plain eth1 (no 802.1Q tag) with 10.10.0.200/24 and 192.0.2.200/24: it
# reaches the first guest's underlay address (so the sandbox works) but none of the VLAN 10
# addresses, although they are in its subnet. One line per check; exit 1 if any check failed.
set -u
netns="$1" underlay_peer="$2"
IFS=, read -r -a vlan_ips <<<"$3"
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
check pass "untagged sandbox -> $underlay_peer (first guest, plain eth1) ping" nsenter --net="/run/netns/$netns" ping -c 2 -i 0.3 -W 3 "$underlay_peer"
for ip in "${vlan_ips[@]}"; do
    check fail "untagged sandbox -> $ip (VLAN 10) ping" nsenter --net="/run/netns/$netns" ping -c 2 -i 0.3 -W 2 "$ip"
done
exit "$failed"
