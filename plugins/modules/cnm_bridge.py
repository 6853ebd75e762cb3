#!/usr/bin/python
# Copyright: cnm.network contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: cnm_bridge
short_description: Bridge networks, as C(docker network create -d bridge) makes them
version_added: 0.1.0
description:
  - Creates, reconciles and removes a bridge network on the managed host, the kernel objects
    Docker's bridge driver makes, a Linux bridge carrying the gateway addresses of the network.
  - The network's metadata (subnet, C(ip_range), address leases of its endpoints) is kept in a small
    store under C(/run/cnm-network), one per network namespace, so it vanishes with the kernel state
    at reboot and the next run rebuilds both.
  - Changing C(subnet), C(gateway), C(ipv6_subnet) or C(mtu) of an existing network reconciles the bridge
    and every attached endpoint (their default routes and MTU follow); a new subnet must still hold the
    addresses of the attached endpoints.
  - Attach sandboxes with M(cnm.network.cnm_endpoint).
requirements:
  - Python 3.9 or newer on the managed node (and no Python library, the collection speaks netlink itself)
  - Linux with bridge and veth support
attributes:
  diff_mode:
    support: full
    description: Shows the bridge (MTU, state, addresses) and the store entry before and after.
options:
  name:
    description:
      - Name of the network, as in C(docker network create NAME).
      - Letters, digits, C(_), C(.) and C(-); C(host) and C(none) are reserved.
    type: str
    required: true
  state:
    description:
      - C(present) creates or reconciles the network, C(absent) removes it.
    type: str
    choices: [present, absent]
    default: present
  bridge_name:
    description:
      - Name of the bridge device, at most 15 characters, only letters, digits, C(_), C(.) and C(-) (no nft or iptables
        wildcard such as C(*) or C(+), no quote, C(/) or whitespace; the name is written into firewall rules).
      - A device of that name that is not this network's bridge (no cnm alias) is refused, here and by
        M(cnm.network.cnm_endpoint).
      - Defaults to C(br-NAME), shortened with a hash of the name when that is longer than 15 characters.
      - Left out, an existing network keeps its value.
    type: str
  subnet:
    description:
      - IPv4 subnet of the network in CIDR form, for example C(172.30.0.0/24). A new network needs
        C(subnet) or C(ipv6_subnet) or both.
      - Left out, an existing network keeps its own; an empty text (V("")) removes it.
      - Omitted with C(ipv6_subnet) given, the network is IPv6-only (Docker 28's C(--ipv4=false)); its endpoints get
        no IPv4 address and a MAC derived from their name; C(gateway) and C(ip_range) need C(subnet).
      - It must not overlap another cnm network on the host, nor a route of the host's main table (other than a default
        route and this network's own bridge route) unless O(allow_host_route_overlap=true). Loopback, multicast,
        link-local and C(0.0.0.0/8) subnets are refused.
    type: str
  gateway:
    description:
      - IPv4 address of the bridge, the endpoints' default gateway. Defaults to the first address of C(subnet).
      - Left out, an existing network keeps its value while O(subnet) stays the same.
    type: str
  ip_range:
    description:
      - Part of C(subnet) from which endpoint addresses are allocated (lowest free first). Defaults to C(subnet).
      - Static endpoint addresses may lie anywhere in C(subnet).
      - Left out, an existing network keeps its value while O(subnet) stays the same.
    type: str
  ipv6_subnet:
    description:
      - IPv6 subnet in CIDR form; endpoints then also get an IPv6 address and default route.
      - Left out, an existing network keeps its own; an empty text (V("")) removes it.
      - Loopback, multicast, link-local and unspecified subnets (of either family) are refused, as are subnets
        overlapping
        a route of the host unless O(allow_host_route_overlap=true).
    type: str
  ipv6_gateway:
    description:
      - IPv6 address of the bridge. Defaults to the first address of C(ipv6_subnet).
      - Left out, an existing network keeps its value while O(ipv6_subnet) stays the same.
    type: str
  mtu:
    description:
      - MTU of the bridge and of every endpoint on it (68 to 65535; at least 1280 with IPv6). Below 1280 an IPv4-only
        network's devices carry no IPv6 at all (the kernel removes it), so nothing needs switching off.
      - Left out, an existing network keeps its value; a new network gets V(1500).
    type: int
  allow_host_route_overlap:
    description:
      - Accept a O(subnet) or O(ipv6_subnet) that overlaps a route of the host's main routing table (other than a
        default
        route and the network's own bridge route). Without it such a subnet is refused, naming the route; the bridge's
        connected route would take that traffic from the host's LAN or router, which is what Docker avoids when it
        picks an address pool (it checks the host's routes).
      - Like Docker, the check is made when the network is created or its subnet changes, never on a rerun of an
        existing network, so a route the host gets later (a VPN) does not make reruns fail.
    type: bool
    default: false
  force:
    description:
      - With C(state=absent), detach the endpoints still attached instead of refusing.
    type: bool
    default: false
  masquerade:
    description:
      - Masquerade traffic from the subnet that leaves through any other interface (Docker's
        C(com.docker.network.bridge.enable_ip_masquerade)). Covers the IPv6 subnet too unless O(ipv6_masquerade) says
        otherwise.
      - Left out, an existing network keeps its value; a new network gets V(true).
    type: bool
  ipv6_masquerade:
    description:
      - Masquerade traffic from O(ipv6_subnet) that leaves through any other interface (NAT66, as Docker 27+ with
        C(ip6tables) does).
        Omitted or null, it follows O(masquerade); V(false) with O(masquerade=true) is the usual setup of a routed,
        globally
        addressed IPv6 subnet behind IPv4 NAT (Docker's C(com.docker.network.bridge.gateway_mode_ipv6=routed)).
      - Needs O(ipv6_subnet); refused on an internal network.
      - Left out, an existing network keeps its value.
    type: bool
  trusted_sources:
    description:
      - CIDRs (IPv4 or IPv6, no host bits) allowed to open connections directly to the endpoints' addresses from outside
        the
        network. Without them only published ports and replies reach an endpoint from any other interface, as in Docker.
      - For routed setups without NAT (O(masquerade=false) and a router that sends the subnet to this host), where
        Docker 27+
        has C(--opt com.docker.network.bridge.gateway_mode_ipv4=routed) (published container ports reachable directly by
        anyone
        who can route to them), C(nat-unprotected) (every port) and Docker 28's C(trusted_host_interfaces) (by
        interface).
        Here every port of the endpoints is open to the listed sources only, and other cnm networks stay isolated
        whatever is
        listed.
      - Refused on an internal network.
      - Left out, an existing network keeps its value.
    type: list
    elements: str
  internal:
    description:
      - Nothing in or out of the network except between its own endpoints (C(docker network create --internal));
        its endpoints get no default route.
      - Left out, an existing network keeps its value; a new network gets V(false).
    type: bool
  dns:
    description:
      - Resolve the names and aliases of the network's endpoints
        (M(cnm.network.cnm_endpoint)'s O(cnm.network.cnm_endpoint#module:name) and
        O(cnm.network.cnm_endpoint#module:aliases)) at the network's gateways, as Docker's embedded DNS does on
        user-defined networks; every other name is forwarded to O(dns_servers), else to the servers of the host's
        C(/etc/resolv.conf).
      - The resolver is aardvark-dns (package C(aardvark-dns), Podman's), one process per host, started, reloaded and
        stopped by the modules; its files live in C(/run/cnm-network). Only packets from the network's own bridge
        reach its gateways' port 53.
      - Named namespaces attached to the network get C(/etc/netns/NAME/resolv.conf) naming the gateways (what
        C(ip netns exec) uses).
      - Left out, an existing network keeps its value; a new network gets V(false).
    type: bool
  dns_servers:
    description:
      - The upstream DNS servers (IP addresses, at most 3) the resolver forwards other names to for this network's
        endpoints, instead of the host's (Docker's C(--dns) for every container of the network).
      - Needs O(dns=true).
      - Left out, an existing network keeps its value.
    type: list
    elements: str
  icc:
    description:
      - Endpoints on this bridge may talk to each other (Docker's C(com.docker.network.bridge.enable_icc)).
        With C(false) every endpoint's bridge port is isolated (the kernel's C(isolated) port flag), so endpoints
        reach the gateway and the outside but not each other.
      - Left out, an existing network keeps its value; a new network gets V(true).
    type: bool
  host_binding_ip:
    description:
      - Default host address of ports published on this network (Docker's
        C(com.docker.network.bridge.host_binding_ipv4)).
        Kept with the network for the port publishing of a coming release.
      - Left out, an existing network keeps its value.
    type: str
notes:
  - Networks are isolated from each other as in Docker; the rules live in the nftables tables
    C(inet cnm), owned by the collection, each rule commented with its owner.
    The C(nft) command (package nftables) is required once a network needs a rule.
  - IPv4 forwarding is turned on while a non-internal network exists, IPv6 forwarding (C(net.ipv6.conf.all.forwarding))
    while a non-internal network has an O(ipv6_subnet); the value found first is recorded and restored when the last
    such
    network goes. With IPv6 forwarding on, the host ignores router advertisements on interfaces whose C(accept_ra) is 1
    (set it
    to 2 on an uplink that learns its IPv6 default route from them), as with Docker.
  - From outside the network (any other interface) only published ports, replies and O(trusted_sources) reach an
    endpoint;
    new connections to endpoint addresses are dropped, as in Docker. The host itself reaches its endpoints.
  - The bridge carries the interface alias C(cnm:network:NAME); the module never touches a bridge without it.
seealso:
  - module: cnm.network.cnm_endpoint
extends_documentation_fragment:
  - cnm.network.cnm
  - cnm.network.cnm.kept
"""

EXAMPLES = r"""
- name: docker network create --subnet 172.30.0.0/24 web
  cnm.network.cnm_bridge:
    name: web
    subnet: 172.30.0.0/24

- name: A dual-stack network with its own bridge name, MTU and allocation range
  cnm.network.cnm_bridge:
    name: backend
    bridge_name: br-backend
    subnet: 10.40.0.0/16
    gateway: 10.40.0.1
    ip_range: 10.40.8.0/24
    ipv6_subnet: fd00:40::/64
    mtu: 1450

- name: docker network create --internal -o com.docker.network.bridge.enable_icc=false vault
  cnm.network.cnm_bridge:
    name: vault
    subnet: 172.31.9.0/24
    internal: true
    icc: false

- name: A routed dual-stack network (no NAT) that hosts of 192.0.2.0/24 and 2001:db8:1::/48 may reach directly
  cnm.network.cnm_bridge:
    name: routed
    subnet: 10.50.0.0/24
    ipv6_subnet: 2001:db8:50::/64
    masquerade: false
    trusted_sources: [192.0.2.0/24, "2001:db8:1::/48"]

- name: docker network rm web, detaching whatever is still attached
  cnm.network.cnm_bridge:
    name: web
    state: absent
    force: true
"""

RETURN = r"""
network:
  description: The network as it is after the run (or would be, in check mode).
  returned: always
  type: dict
  contains:
    name:
      description: Network name.
      type: str
      sample: web
    driver:
      description: Network driver.
      type: str
      sample: bridge
    bridge_name:
      description: Name of the bridge device.
      type: str
      sample: br-web
    subnet:
      description: IPv4 subnet, or null for an IPv6-only network.
      type: str
      sample: 172.30.0.0/24
    gateway:
      description: IPv4 gateway on the bridge, or null for an IPv6-only network.
      type: str
      sample: 172.30.0.1
    ip_range:
      description: Allocation range.
      type: str
      sample: 172.30.0.0/24
    ipv6_subnet:
      description: IPv6 subnet, or null.
      type: str
      sample: fd00:30::/64
    ipv6_gateway:
      description: IPv6 gateway, or null.
      type: str
      sample: "fd00:30::1"
    mtu:
      description: MTU of the bridge and its endpoints.
      type: int
      sample: 1500
    masquerade:
      description: Whether traffic leaving the network is masqueraded.
      type: bool
      sample: true
    internal:
      description: Whether the network is internal.
      type: bool
      sample: false
    ipv6_masquerade:
      description: Masquerade of the IPv6 subnet as asked for; null follows C(masquerade).
      type: bool
      sample: null
    trusted_sources:
      description: CIDRs allowed to open connections directly to the endpoints.
      type: list
      elements: str
      sample: ["192.0.2.0/24"]
    dns:
      description: Whether the network's endpoints' names are resolved at its gateways; only present when true.
      type: bool
      sample: true
    dns_servers:
      description: The network's upstream DNS servers; only present when set.
      type: list
      elements: str
      sample: ["192.0.2.53"]
    icc:
      description: Whether endpoints on the bridge may talk to each other.
      type: bool
      sample: true
    host_binding_ip:
      description: Default host address of published ports, or null.
      type: str
      sample: 192.0.2.11
    endpoints:
      description: Number of endpoints attached.
      type: int
      sample: 2
    state:
      description: C(absent) after removal.
      type: str
      sample: absent
    detached:
      description: With C(state=absent), the number of endpoints detached by C(force).
      type: int
      sample: 0
changes:
  description: The changes made (or, in check mode, that would be made), in order.
  returned: always
  type: list
  elements: str
  sample: ["create bridge br-web mtu 1500", "add address 172.30.0.1/24 to br-web", "write the store"]
reclaimed:
  description:
    - Address leases freed because their sandbox no longer exists (a host veth it left on the network is deleted).
    - C(ports) lists the published ports that went with a lease, with their nft elements and conntrack entries.
  returned: when leases were reclaimed
  type: list
  elements: dict
  sample: [{"network": "web", "sandbox": "netns:old", "ipv4_address": "172.30.0.2"}]
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.cnm.network.plugins.module_utils.bridge import plan_bridge_absent, plan_bridge_present
from ansible_collections.cnm.network.plugins.module_utils.host import run_module
from ansible_collections.cnm.network.plugins.module_utils.model import BridgeNetwork, check_name, default_bridge_name


def main() -> None:
    module = AnsibleModule(
        argument_spec=dict(
            name=dict(type="str", required=True),
            state=dict(type="str", choices=["present", "absent"], default="present"),
            bridge_name=dict(type="str"),
            subnet=dict(type="str"),
            gateway=dict(type="str"),
            ip_range=dict(type="str"),
            ipv6_subnet=dict(type="str"),
            ipv6_gateway=dict(type="str"),
            mtu=dict(type="int"),
            force=dict(type="bool", default=False),
            allow_host_route_overlap=dict(type="bool", default=False),
            masquerade=dict(type="bool"),
            ipv6_masquerade=dict(type="bool"),
            trusted_sources=dict(type="list", elements="str"),
            internal=dict(type="bool"),
            icc=dict(type="bool"),
            dns=dict(type="bool"),
            dns_servers=dict(type="list", elements="str"),
            host_binding_ip=dict(type="str"),
        ),
        supports_check_mode=True,
    )
    params = module.params

    def build(host):
        if params["state"] == "absent":
            name = check_name("name", params["name"])
            return plan_bridge_absent(host, name, params["bridge_name"] or default_bridge_name(name), params["force"])
        return plan_bridge_present(
            host, BridgeNetwork.from_params(host.declared(params, "bridge")), params["allow_host_route_overlap"]
        )

    run_module(module, build)


if __name__ == "__main__":
    main()
