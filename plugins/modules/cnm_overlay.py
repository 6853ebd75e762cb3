#!/usr/bin/python
# Copyright: cnm.network contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: cnm_overlay
short_description: Multi-host VXLAN overlay networks, with the inventory as the control plane
version_added: 0.1.0
description:
  - Creates, reconciles and removes an overlay network on this host - a bridge network (as
    M(cnm.network.cnm_bridge) makes it, with the same gateway address on every host) plus a VXLAN
    device on it (learning off, ARP proxy on, MAC pinned so that a re-created device does not strand the
    peers' FDB entries).
  - From O(peers) the VXLAN device's FDB is made exact - one flood entry per remote VTEP for broadcast
    and unknown traffic, one entry per remote endpoint MAC - and its neighbour table too (the device
    answers ARP for remote endpoints itself, so ARP never crosses the underlay). Entries of peers or
    endpoints no longer listed are removed.
  - With O(control_plane=evpn) BGP EVPN is the control plane instead - FRR's zebra and bgpd (started by the role
    C(cnm.network.cnm_overlay), not by this module) program the remote entries themselves, and this module only shapes
    the kernel for them (see O(control_plane)).
  - With O(restrict_peers) the collection's nftables table accepts VXLAN UDP only from listed peers.
  - Endpoints attach with M(cnm.network.cnm_endpoint) as on bridge networks, with addresses from this
    host's O(ip_range) slice; ports publish with M(cnm.network.cnm_port_publish).
requirements:
  - nftables on the managed node and Python 3.9 or newer; a kernel with VXLAN
attributes:
  diff_mode:
    support: full
    description: Shows the bridge, the VXLAN device with its FDB and neighbour entries, the rules and the store before
      and after.
options:
  name:
    description: Name of the overlay network (the same on every host).
    type: str
    required: true
  state:
    description: C(present) creates or reconciles the overlay on this host, C(absent) removes it.
    type: str
    choices: [present, absent]
    default: present
  vni:
    description:
      - VXLAN network identifier (1 to 16777215), the same on every host. Required to create the overlay.
      - Left out, an existing network keeps its value.
    type: int
  subnet:
    description:
      - IPv4 subnet of the overlay (the same on every host). Required to create the overlay; left out, an existing
        overlay keeps its own.
    type: str
  gateway:
    description:
      - Gateway address on every host's bridge (a distributed gateway). Defaults to the first address of
        O(subnet).
      - Left out, an existing network keeps its value while O(subnet) stays the same.
    type: str
  ip_range:
    description:
      - This host's slice of O(subnet) for allocated endpoint addresses (see the C(cnm.network.overlay_slice)
        filter).
      - Left out, an existing network keeps its value while O(subnet) stays the same.
    type: str
  local_ip:
    description:
      - This host's VTEP address on the underlay (an IPv4 address of this host). Required to
        create the overlay.
      - Left out, an existing network keeps its value.
    type: str
  peers:
    description:
      - "The remote VTEPs, each a plain address or a dict with C(vtep) and C(endpoints) (a list of dicts with C(ip) and
        C(mac);
        the MAC defaults to Docker's C(02:42:) + the IPv4 bytes). See the C(cnm.network.overlay_peers) filter."
      - An endpoint's dict may also carry its DNS C(name) and C(aliases), which this host's resolver then answers
        (with O(dns=true)), as the role C(cnm.network.cnm_overlay) shares them.
      - Omitted, the peers stay as they are (the FDB and neighbour entries are left alone); an empty list removes them
        all.
    type: list
    elements: raw
  control_plane:
    description:
      - Who programs the VXLAN device's remote FDB and neighbour entries.
      - V(static) - this module, from O(peers) (the inventory is the control plane).
      - "V(evpn) - FRR's zebra, from BGP EVPN routes (C(advertise-all-vni)); FRR itself is the role's or the user's
        to run. The module writes no FDB or neighbour entries from O(peers) (it removes those it wrote in static mode)
        and never touches zebra's (extern_learn, NOARP or proto zebra); the VXLAN device's bridge port gets
        C(neigh_suppress on) and C(learning off), the bridge a MAC derived from the O(gateway) (C(02:42:) + its IPv4
        bytes, the same on every host), and each endpoint attached with M(cnm.network.cnm_endpoint) a static FDB entry
        on its bridge port and a permanent neighbour on the bridge, which zebra advertises at once."
      - With V(evpn), O(peers) still gives the VTEPs O(restrict_peers) accepts and the endpoint names the resolver
        answers (O(dns)).
      - Switching an existing overlay reconciles it in place (its endpoints stay attached). From V(evpn) back to
        V(static) only once FRR is stopped - refused, in check mode too and with nothing changed, while a C(zebra)
        or C(watchfrr) runs in the host's network namespace (zebra serves every VNI of the host and would go on
        programming this one's entries beside the module's); the role C(cnm.network.cnm_overlay) stops FRR first.
        With FRR stopped the switch also removes what zebra left (a killed zebra's C(extern_learn) FDB entries,
        C(proto zebra) neighbours and NOARP flood entries), which nothing owns any longer.
      - V(evpn) with O(encrypted=true) is refused (not supported yet).
      - Left out, an existing network keeps its value; a new network gets V(static).
    type: str
    choices: [static, evpn]
  port:
    description:
      - VXLAN UDP port (1 to 65535; V(0) is refused, not taken as the default).
      - Left out, an existing network keeps its value; a new network gets V(4789).
    type: int
  mtu:
    description:
      - MTU of the bridge and every endpoint. Defaults to the underlay link's MTU minus 50 (the VXLAN
        overhead); larger is refused.
      - Left out, an existing overlay keeps an MTU that was asked for; one never asked for follows the underlay
        (and O(encrypted)).
    type: int
  restrict_peers:
    description:
      - Accept VXLAN of this O(vni) on O(port) only from the listed peers' VTEPs (other VNIs on the port are
        not affected).
      - Left out, an existing network keeps its value; a new network gets V(true).
    type: bool
  encrypted:
    description:
      - "IPsec between the VTEPs (Docker's encrypted overlay): for every pair (this host, peer) ESP in transport mode
        for the
        VXLAN UDP traffic of this overlay's O(port), AES-GCM (rfc4106(gcm(aes)), 128-bit key, 32-bit salt, 128-bit ICV),
        one SPI and key per direction derived from O(encryption_key), the two VTEP addresses and the port, so every host
        computes the same states without talking. States and policies of peers no longer listed are removed."
      - "VXLAN of this O(vni) that did not come through IPsec is dropped from any source by the collection's nftables
        table
        (C(meta ipsec missing)), and from a listed peer by the kernel's check of the input policy too; a new VXLAN
        device comes up
        only once that rule and the XFRM states and policies are in place."
      - "The MTU defaults to what ESP leaves room for: the underlay's MTU minus 50 (VXLAN) minus 34 (ESP header 8, IV 8,
        trailer 2, ICV 16) rounded down to ESP's 4-byte alignment - 1416 on a 1500-byte underlay. A larger O(mtu) is
        refused."
      - "On a kernel without XFRM, ESP (C(esp4)) or AES-GCM the module fails naming what is missing; it never falls back
        to clear text."
      - "Omitted, a new overlay is not encrypted and an existing one keeps what it has (turning encryption off takes
        C(false))."
      - "The overlay needs its VXLAN UDP O(port) to itself on this host (the IPsec policies select the traffic by
        port)."
    type: bool
  encryption_key:
    description:
      - "The shared key of O(encrypted) (the same on every host, at least 16 characters, e.g. C(openssl rand -hex 16)):
        outbound traffic is encrypted with the states derived from it. Never logged, never stored, never shown in a diff
        (the diff shows the SPIs)."
    type: str
  encryption_keys:
    description:
      - "Further keys accepted on receive besides O(encryption_key), for a rotation without a traffic gap; their states
        are
        installed for both directions, but nothing is sent with them. Rotation from key A to key B, each step on every
        host (any batches, C(serial) or C(--limit) subsets) before the next starts -
        1. O(encryption_key=A), O(encryption_keys=[B]) (every host can now receive B);
        2. O(encryption_key=B), O(encryption_keys=[A]) (hosts switch to sending B; A still accepted from hosts not yet
        switched);
        3. O(encryption_key=B) (A's states go)."
    type: list
    elements: str
  bridge_name:
    description:
      - Name of the bridge. Defaults to C(br-NAME) (shortened with a hash when longer than 15 characters).
      - Left out, an existing network keeps its value.
    type: str
  vxlan_name:
    description:
      - Name of the VXLAN device. Defaults to C(vx-NAME) (shortened likewise).
      - Left out, an existing network keeps its value.
    type: str
  masquerade:
    description:
      - Masquerade traffic leaving the overlay through other interfaces (each host routes its own endpoints
        out).
      - Left out, an existing network keeps its value; a new network gets V(true).
    type: bool
  trusted_sources:
    description:
      - CIDRs (IPv4 or IPv6, no host bits) allowed to open connections directly to this host's endpoints from outside
        the
        overlay, through this host's routing (see M(cnm.network.cnm_bridge)). Without them only published ports and
        replies
        come in; the overlay's own endpoints on other hosts reach them over VXLAN whatever is listed.
      - Refused on an internal overlay.
      - Left out, an existing network keeps its value.
    type: list
    elements: str
  internal:
    description:
      - No traffic in or out of the overlay except between its endpoints.
      - Left out, an existing network keeps its value; a new network gets V(false).
    type: bool
  dns:
    description:
      - Resolve the names and aliases of the overlay's endpoints at its gateway on this host, as
        M(cnm.network.cnm_bridge)'s O(cnm.network.cnm_bridge#module:dns) does (aardvark-dns, one process per host).
      - This host's resolver answers for the endpoints attached on this host and for those of O(peers) that carry
        a C(name) or C(aliases); the role C(cnm.network.cnm_overlay) shares every host's names so.
      - Left out, an existing network keeps its value; a new network gets V(false).
    type: bool
  dns_servers:
    description:
      - The upstream DNS servers (IP addresses, at most 3) the resolver forwards other names to. Needs O(dns=true).
      - Left out, an existing network keeps its value.
    type: list
    elements: str
  icc:
    description:
      - Endpoints on this host's bridge may talk to each other.
      - Left out, an existing network keeps its value; a new network gets V(true).
    type: bool
  allow_host_route_overlap:
    description:
      - Accept a O(subnet) that overlaps a route of the host's main routing table (other than a default
        route and the network's own bridge route). Without it such a subnet is refused, naming the route; the bridge's
        connected route would take that traffic from the host's LAN or router, which is what Docker avoids when it
        picks an address pool (it checks the host's routes).
      - Like Docker, the check is made when the network is created or its subnet changes, never on a rerun of an
        existing network, so a route the host gets later (a VPN) does not make reruns fail.
    type: bool
    default: false
  force:
    description: With C(state=absent), detach the endpoints still attached instead of refusing.
    type: bool
    default: false
notes:
  - "Encryption uses neither IKE nor replay protection: the keys are static (as in Docker, whose control plane rotates
    them every
    12 hours), and a host that re-creates its states (a reboot) starts its sequence numbers again, which a replay window
    would
    refuse. An SA carries at most 2^32 - 1 packets (the kernel stops it rather than repeat a GCM nonce): rotate the key
    well before."
extends_documentation_fragment:
  - cnm.network.cnm
  - cnm.network.cnm.kept
seealso:
  - module: cnm.network.cnm_endpoint
  - module: cnm.network.cnm_bridge
"""

EXAMPLES = r"""
- name: The overlay on this host, its peers from the inventory
  cnm.network.cnm_overlay:
    name: ov0
    vni: 4200
    subnet: 10.200.0.0/16
    ip_range: "{{ '10.200.0.0/16' | cnm.network.overlay_slice(inventory_hostname, groups['cnm_lab']) }}"
    local_ip: "{{ cnm_underlay_ip }}"
    peers: "{{ hostvars | cnm.network.overlay_peers(inventory_hostname, hosts=groups['cnm_lab']) }}"

- name: Peers written out
  cnm.network.cnm_overlay:
    name: ov0
    vni: 4200
    subnet: 10.200.0.0/16
    ip_range: 10.200.1.0/24
    local_ip: 192.0.2.11
    peers:
      - vtep: 192.0.2.12
        endpoints: [{ip: 10.200.2.10, mac: "02:42:0a:c8:02:0a"}]
      - 192.0.2.13

- name: An overlay whose remote entries FRR programs (BGP EVPN; FRR runs on the host)
  cnm.network.cnm_overlay:
    name: ov1
    vni: 4201
    subnet: 10.202.0.0/16
    ip_range: 10.202.1.0/24
    local_ip: 192.0.2.11
    control_plane: evpn
    peers: [192.0.2.12, 192.0.2.13]  # the VTEPs restrict_peers accepts

- name: An encrypted overlay (IPsec ESP between every pair of VTEPs)
  cnm.network.cnm_overlay:
    name: secure
    vni: 4300
    port: 4790
    subnet: 10.201.0.0/16
    ip_range: 10.201.1.0/24
    local_ip: 192.0.2.11
    peers: [192.0.2.12, 192.0.2.13]
    encrypted: true
    encryption_key: "{{ vault_overlay_key }}"

- name: Key rotation, step 1 of 3 on every host - accept the new key, still send with the old one
  cnm.network.cnm_overlay:
    name: secure
    vni: 4300
    port: 4790
    subnet: 10.201.0.0/16
    ip_range: 10.201.1.0/24
    local_ip: 192.0.2.11
    encrypted: true
    encryption_key: "{{ vault_overlay_key }}"
    encryption_keys: ["{{ vault_overlay_next_key }}"]
"""

RETURN = r"""
network:
  description: The overlay on this host after the run (the keys of M(cnm.network.cnm_bridge)'s plus these).
  returned: always
  type: dict
  contains:
    vni:
      description: VXLAN network identifier.
      type: int
      sample: 4200
    local_ip:
      description: This host's VTEP address.
      type: str
      sample: 192.0.2.11
    port:
      description: VXLAN UDP port.
      type: int
      sample: 4789
    vxlan_name:
      description: The VXLAN device.
      type: str
      sample: vx-ov0
    peers:
      description: The remote VTEPs with the endpoints behind them, as now in force (the shape of the O(peers) option).
      type: list
      elements: dict
      sample: [{"vtep": "192.0.2.12", "endpoints": [{"ip": "10.200.2.10", "mac": "02:42:0a:c8:02:0a"}]}]
    encrypted:
      description: Whether the overlay is encrypted.
      type: bool
      sample: true
    control_plane:
      description: Who programs the remote entries, V(static) or V(evpn) (see O(control_plane)).
      type: str
      sample: evpn
    ipsec:
      description: The XFRM states and policies of an encrypted overlay on this host (SPIs and addresses, never keys).
      returned: when encrypted
      type: dict
      sample: {"xfrm states": ["192.0.2.11 -> 192.0.2.12 esp spi 0x5e1f03a2"],
               "xfrm policies": ["out 192.0.2.11/32 -> 192.0.2.12/32 udp dport 4789 esp spi 0x5e1f03a2"]}
changes:
  description: The changes made (or, in check mode, that would be made), in order.
  returned: always
  type: list
  elements: str
  sample: ["create vxlan vx-ov0 vni 4200 local 192.0.2.11 port 4789 on br-ov0", "add fdb 00:00:00:00:00:00 dst
    192.0.2.12"]
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.cnm.network.plugins.module_utils.host import run_module
from ansible_collections.cnm.network.plugins.module_utils.model import check_name
from ansible_collections.cnm.network.plugins.module_utils.overlay import plan_overlay_absent, plan_overlay_present


def main() -> None:
    module = AnsibleModule(
        argument_spec=dict(
            name=dict(type="str", required=True),
            state=dict(type="str", choices=["present", "absent"], default="present"),
            vni=dict(type="int"),
            subnet=dict(type="str"),
            gateway=dict(type="str"),
            ip_range=dict(type="str"),
            local_ip=dict(type="str"),
            peers=dict(type="list", elements="raw"),
            control_plane=dict(type="str", choices=["static", "evpn"]),
            port=dict(type="int"),
            mtu=dict(type="int"),
            restrict_peers=dict(type="bool"),
            encrypted=dict(type="bool"),
            encryption_key=dict(type="str", no_log=True),
            encryption_keys=dict(type="list", elements="str", no_log=True),
            bridge_name=dict(type="str"),
            vxlan_name=dict(type="str"),
            masquerade=dict(type="bool"),
            trusted_sources=dict(type="list", elements="str"),
            internal=dict(type="bool"),
            icc=dict(type="bool"),
            dns=dict(type="bool"),
            dns_servers=dict(type="list", elements="str"),
            force=dict(type="bool", default=False),
            allow_host_route_overlap=dict(type="bool", default=False),
        ),
        required_if=[("encrypted", True, ["encryption_key"])],
        supports_check_mode=True,
    )
    params = module.params

    def build(host):
        if params["state"] == "absent":
            return plan_overlay_absent(host, check_name("name", params["name"]), params["force"])
        return plan_overlay_present(host, params)

    run_module(module, build)


if __name__ == "__main__":
    main()
