#!/usr/bin/python
# Copyright: cnm.network contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: cnm_ipvlan
short_description: Ipvlan networks, as C(docker network create -d ipvlan) makes them
version_added: 0.2.0
description:
  - Creates, reconciles and removes an ipvlan network on a C(parent) interface of the managed host. Each endpoint
    attached with M(cnm.network.cnm_endpoint) is an ipvlan link created directly inside its sandbox. Every ipvlan
    link has the parent's MAC address, so the LAN sees one MAC however many endpoints there are (the reason to
    choose ipvlan over macvlan where a switch limits MACs per port).
  - In C(ipvlan_mode=l2) the endpoints are hosts of the parent's LAN, with the LAN's router (C(gateway)) as their
    default gateway. In C(l3) and C(l3s) the parent routes for them instead; their default route goes through their
    interface (Docker's C(default dev eth0)), endpoints of one parent reach each other whatever their subnets, and
    the LAN reaches C(subnet) through a route to the host (the LAN router's to hold, as with Docker). C(l3s) also
    passes their traffic through the host's netfilter.
  - The host cannot reach its own ipvlan endpoints (the kernel does not deliver between a parent and its ipvlans).
  - A C(parent) of the form C(IFACE.VID) names an 802.1Q sub-interface of C(IFACE); when it does not exist it is
    created with the network (module C(8021q)) and removed with the last network that uses it.
  - Refused, naming the kernel, where the kernel has no ipvlan driver (module C(ipvlan) neither loaded, built in nor
    installed under C(/lib/modules)).
  - The network's metadata (subnet, C(ip_range), leases) is kept in the store under C(/run/cnm-network).
requirements:
  - Python 3.9 or newer on the managed node (and no Python library, the collection speaks netlink itself)
  - Linux with ipvlan support, module C(ipvlan) (and 802.1Q support for an C(IFACE.VID) parent)
attributes:
  diff_mode:
    support: full
    description: Shows the VLAN sub-interface and the store entry before and after.
options:
  name:
    description:
      - Name of the network, as in C(docker network create -d ipvlan NAME). C(host) and C(none) are reserved.
    type: str
    required: true
  state:
    description:
      - C(present) creates or reconciles the network, C(absent) removes it.
    type: str
    choices: [present, absent]
    default: present
  parent:
    description:
      - The host interface whose LAN the endpoints join (Docker's C(-o parent=)), or C(IFACE.VID) for VLAN C(VID)
        on C(IFACE). It must be a plain interface of the host, not a bridge, not a port of a bridge, not a cnm device,
        and not the parent of a macvlan network (the kernel takes one kind per parent).
      - Required to create the network. It cannot change while endpoints are attached.
      - Left out, an existing network keeps its value.
    type: str
  ipvlan_mode:
    description:
      - The ipvlan mode (Docker's C(-o ipvlan_mode=)). The kernel keeps one mode per parent, so every ipvlan network
        on one parent has the same. It cannot change while endpoints are attached.
      - Left out, an existing network keeps its value; a new network gets V(l2).
    type: str
    choices: [l2, l3, l3s]
  ipvlan_flag:
    description:
      - The ipvlan flag (Docker's C(-o ipvlan_flag=)). C(bridge) lets endpoints on one parent talk to each other
        directly; C(private) forbids it; C(vepa) sends their traffic to the LAN switch (which must hairpin). One flag
        per parent, as the mode. It cannot change while endpoints are attached.
      - Left out, an existing network keeps its value; a new network gets V(bridge).
    type: str
    choices: [bridge, private, vepa]
  subnet:
    description:
      - The endpoints' IPv4 subnet in CIDR form (in mode C(l2), the LAN's). Required to create
        the network (left out, an existing network keeps its own). It must
        not overlap another cnm network on the host.
    type: str
  gateway:
    description:
      - In mode C(l2), the LAN's router, the endpoints' default gateway. Defaults to the first address of C(subnet).
        In C(l3) and C(l3s) it is only kept out of the allocation, as Docker does.
      - Left out, an existing network keeps its value while O(subnet) stays the same.
    type: str
  ip_range:
    description:
      - Part of C(subnet) from which endpoint addresses are allocated. Defaults to C(subnet).
      - Left out, an existing network keeps its value while O(subnet) stays the same.
    type: str
  ipv6_subnet:
    description:
      - IPv6 subnet in CIDR form; endpoints then also get an IPv6 address and default route.
      - Left out, an existing network keeps its own; an empty text (V("")) removes it.
    type: str
  ipv6_gateway:
    description:
      - The IPv6 router of the LAN (mode C(l2)). Defaults to the first address of C(ipv6_subnet).
      - Left out, an existing network keeps its value while O(ipv6_subnet) stays the same.
    type: str
  mtu:
    description:
      - MTU of the endpoints; at most the parent's MTU. Defaults to the parent's MTU.
      - Left out, an existing network keeps its value.
    type: int
  force:
    description:
      - With C(state=absent), detach the endpoints still attached instead of refusing.
    type: bool
    default: false
notes:
  - Ports cannot be published to ipvlan endpoints (M(cnm.network.cnm_port_publish) refuses) and C(mac_address) cannot
    be set on them (M(cnm.network.cnm_endpoint) refuses).
  - The host's firewall and forwarding are not involved. A VLAN sub-interface created by the module carries the alias
    C(cnm:vlan:PARENT); the module never deletes an interface without its alias.
seealso:
  - module: cnm.network.cnm_endpoint
  - module: cnm.network.cnm_macvlan
extends_documentation_fragment:
  - cnm.network.cnm
  - cnm.network.cnm.kept
"""

EXAMPLES = r"""
- name: docker network create -d ipvlan --subnet 192.168.1.0/24 --ip-range 192.168.1.192/27 -o parent=eth1 lan
  cnm.network.cnm_ipvlan:
    name: lan
    parent: eth1
    subnet: 192.168.1.0/24
    ip_range: 192.168.1.192/27

- name: docker network create -d ipvlan --subnet 10.50.0.0/24 -o parent=eth1.50 -o ipvlan_mode=l3 routed
  cnm.network.cnm_ipvlan:
    name: routed
    parent: eth1.50
    ipvlan_mode: l3
    subnet: 10.50.0.0/24

- name: docker network rm lan, detaching whatever is still attached
  cnm.network.cnm_ipvlan:
    name: lan
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
      sample: lan
    driver:
      description: Network driver.
      type: str
      sample: ipvlan
    parent:
      description: The parent interface.
      type: str
      sample: eth1
    ipvlan_mode:
      description: The ipvlan mode.
      type: str
      sample: l2
    ipvlan_flag:
      description: The ipvlan flag.
      type: str
      sample: bridge
    subnet:
      description: IPv4 subnet.
      type: str
      sample: 192.168.1.0/24
    gateway:
      description: The LAN's router (mode C(l2)) or the address kept out of the allocation.
      type: str
      sample: 192.168.1.1
    ip_range:
      description: Allocation range.
      type: str
      sample: 192.168.1.192/27
    ipv6_subnet:
      description: IPv6 subnet, or null.
      type: str
      sample: fd00:1::/64
    ipv6_gateway:
      description: IPv6 router, or null.
      type: str
      sample: "fd00:1::1"
    mtu:
      description: MTU of the endpoints (the parent's unless set).
      type: int
      sample: 1500
    mtu_set:
      description: Whether C(mtu) was given (otherwise it follows the parent's MTU on every run).
      type: bool
      sample: false
    default_on_link:
      description: Whether the endpoints' default route goes through their interface, without a gateway (C(l3),
        C(l3s)).
      type: bool
      sample: false
    vlan_created:
      description: Whether the C(IFACE.VID) parent was created by this collection (and goes with the last network on
        it).
      type: bool
      sample: false
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
  sample: ["create VLAN sub-interface eth1.50 (id 50 on eth1)", "write the store"]
reclaimed:
  description:
    - Address leases freed because their sandbox no longer exists.
  returned: when leases were reclaimed
  type: list
  elements: dict
  sample: [{"network": "lan", "sandbox": "netns:old", "ipv4_address": "192.168.1.194"}]
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.cnm.network.plugins.module_utils.host import run_module
from ansible_collections.cnm.network.plugins.module_utils.ipvlan import plan_ipvlan_absent, plan_ipvlan_present
from ansible_collections.cnm.network.plugins.module_utils.model import (
    IPVLAN_FLAGS,
    IPVLAN_MODES,
    IpvlanNetwork,
    check_name,
)


def main() -> None:
    module = AnsibleModule(
        argument_spec=dict(
            name=dict(type="str", required=True),
            state=dict(type="str", choices=["present", "absent"], default="present"),
            parent=dict(type="str"),
            ipvlan_mode=dict(type="str", choices=list(IPVLAN_MODES)),
            ipvlan_flag=dict(type="str", choices=list(IPVLAN_FLAGS)),
            subnet=dict(type="str"),
            gateway=dict(type="str"),
            ip_range=dict(type="str"),
            ipv6_subnet=dict(type="str"),
            ipv6_gateway=dict(type="str"),
            mtu=dict(type="int"),
            force=dict(type="bool", default=False),
        ),
        supports_check_mode=True,
    )
    params = module.params

    def build(host):
        if params["state"] == "absent":
            return plan_ipvlan_absent(host, check_name("name", params["name"]), params["force"])
        return plan_ipvlan_present(host, IpvlanNetwork.from_params(host.declared(params, "ipvlan")))

    run_module(module, build)


if __name__ == "__main__":
    main()
