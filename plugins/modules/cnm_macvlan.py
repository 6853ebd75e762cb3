#!/usr/bin/python
# Copyright: cnm.network contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: cnm_macvlan
short_description: Macvlan networks, as C(docker network create -d macvlan) makes them, with host access
version_added: 0.2.0
description:
  - Creates, reconciles and removes a macvlan network on a C(parent) interface of the managed host. Each
    endpoint attached with M(cnm.network.cnm_endpoint) is a macvlan link created directly inside its sandbox,
    with its own MAC address, a first-class device on the parent's LAN; its default route goes to the LAN's
    router (C(gateway)), not to the host.
  - A macvlan parent never passes frames between the host and its own macvlans, so by default the host cannot
    reach the endpoints (Docker's long-standing limitation). C(host_access=true) adds a macvlan of the host's own
    on the parent (the shim) carrying C(host_access_ip), with a route to C(ip_range) (and one to each endpoint
    with a static address outside it), so the host reaches its macvlan endpoints and they reach it.
  - A C(parent) of the form C(IFACE.VID) names an 802.1Q sub-interface of C(IFACE); when it does not exist it is
    created with the network (the kernel needs 802.1Q support, module C(8021q)) and removed with the last
    network that uses it.
  - The network's metadata (subnet, C(ip_range), leases) is kept in the store under C(/run/cnm-network).
requirements:
  - Python 3.9 or newer on the managed node (and no Python library, the collection speaks netlink itself)
  - Linux with macvlan support (and 802.1Q support for an C(IFACE.VID) parent)
attributes:
  diff_mode:
    support: full
    description: Shows the shim, the VLAN sub-interface and the store entry before and after.
options:
  name:
    description:
      - Name of the network, as in C(docker network create -d macvlan NAME). C(host) and C(none) are reserved.
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
        on C(IFACE). It must be a plain interface of the host, not a bridge, not a port of a bridge, not a cnm device.
      - At most 15 bytes of letters, digits, C(_), C(.) and C(-), as every interface name the collection takes.
      - Required to create the network. It cannot change while endpoints are attached.
      - Left out, an existing network keeps its value.
    type: str
  mode:
    description:
      - The macvlan mode of the endpoints (Docker's C(-o macvlan_mode=)). C(bridge) lets endpoints on one parent
        talk to each other directly; C(private) forbids it; C(vepa) sends everything to the LAN switch (which must
        hairpin); C(passthru) gives the parent to a single endpoint, exclusively.
      - It cannot change while endpoints are attached.
      - Left out, an existing network keeps its value; a new network gets V(bridge).
    type: str
    choices: [bridge, private, vepa, passthru]
  subnet:
    description:
      - The LAN's IPv4 subnet in CIDR form. Required to create the network
        (left out, an existing network keeps its own). It must not overlap another cnm network on
        the host.
    type: str
  gateway:
    description:
      - The LAN's router, the endpoints' default gateway. Defaults to the first address of C(subnet).
      - Left out, an existing network keeps its value while O(subnet) stays the same.
    type: str
  ip_range:
    description:
      - Part of C(subnet) from which endpoint addresses are allocated, so that they do not collide with the LAN's
        other hosts (its DHCP pool). Defaults to C(subnet).
      - Left out, an existing network keeps its value while O(subnet) stays the same.
    type: str
  ipv6_subnet:
    description:
      - IPv6 subnet in CIDR form; endpoints then also get an IPv6 address and default route.
      - Left out, an existing network keeps its own; an empty text (V("")) removes it.
    type: str
  ipv6_gateway:
    description:
      - The IPv6 router of the LAN. Defaults to the first address of C(ipv6_subnet).
      - Left out, an existing network keeps its value while O(ipv6_subnet) stays the same.
    type: str
  mtu:
    description:
      - MTU of the endpoints; at most the parent's MTU. Defaults to the parent's MTU.
      - Left out, an existing network keeps its value.
    type: int
  host_access:
    description:
      - Let the host reach the network's endpoints through a shim macvlan (needs C(mode=bridge) and C(host_access_ip)).
      - Left out, an existing network keeps its value; a new network gets V(false).
    type: bool
  host_access_ip:
    description:
      - The host's IPv4 address on the network (on the shim), in C(subnet), outside C(ip_range), not the gateway.
      - Left out, an existing network keeps its value.
    type: str
  shim_name:
    description:
      - Name of the shim interface. Defaults to C(mvs-) plus a hash of the network name.
      - Left out, an existing network keeps its value.
    type: str
  force:
    description:
      - With C(state=absent), detach the endpoints still attached instead of refusing.
    type: bool
    default: false
notes:
  - Ports cannot be published to macvlan endpoints (M(cnm.network.cnm_port_publish) refuses), as they have their own
    addresses on the LAN.
  - The host's firewall and forwarding are not involved, as macvlan frames do not pass through the host's IP stack
    (except the shim's).
  - The shim carries the alias C(cnm:shim:NAME) and a VLAN sub-interface created by the module C(cnm:vlan:PARENT);
    the module never deletes an interface without its alias.
seealso:
  - module: cnm.network.cnm_endpoint
  - module: cnm.network.cnm_bridge
extends_documentation_fragment:
  - cnm.network.cnm
  - cnm.network.cnm.kept
"""

EXAMPLES = r"""
- name: docker network create -d macvlan --subnet 192.168.1.0/24 --gateway 192.168.1.1 --ip-range 192.168.1.192/27 -o
    parent=eth1 lan
  cnm.network.cnm_macvlan:
    name: lan
    parent: eth1
    subnet: 192.168.1.0/24
    gateway: 192.168.1.1
    ip_range: 192.168.1.192/27

- name: The same, and the host reaches its macvlan containers at 192.168.1.223
  cnm.network.cnm_macvlan:
    name: lan
    parent: eth1
    subnet: 192.168.1.0/24
    gateway: 192.168.1.1
    ip_range: 192.168.1.192/28
    host_access: true
    host_access_ip: 192.168.1.223

- name: VLAN 10 on eth1 (creates eth1.10), containers may not talk to each other
  cnm.network.cnm_macvlan:
    name: vlan10
    parent: eth1.10
    mode: private
    subnet: 10.10.0.0/24

- name: docker network rm lan, detaching whatever is still attached
  cnm.network.cnm_macvlan:
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
      sample: macvlan
    parent:
      description: The parent interface.
      type: str
      sample: eth1
    mode:
      description: The macvlan mode.
      type: str
      sample: bridge
    subnet:
      description: IPv4 subnet.
      type: str
      sample: 192.168.1.0/24
    gateway:
      description: The LAN's router.
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
    host_access:
      description: Whether the host reaches the endpoints through a shim.
      type: bool
      sample: true
    host_access_ip:
      description: The host's address on the shim, or null.
      type: str
      sample: 192.168.1.223
    shim_name:
      description: The shim interface, or null.
      type: str
      sample: mvs-3a9f0c2d1e4
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
  sample: ["create host-access shim mvs-3a9f0c2d1e4 on eth1 (macvlan bridge) mtu 1500", "add address 192.168.1.223/32 to
    mvs-3a9f0c2d1e4",
           "add route 192.168.1.192/28 through mvs-3a9f0c2d1e4", "write the store"]
reclaimed:
  description:
    - Address leases freed because their sandbox no longer exists (a host veth it left on the network is deleted).
    - C(ports) lists the published ports that went with a lease, with their nft elements and conntrack entries.
  returned: when leases were reclaimed
  type: list
  elements: dict
  sample: [{"network": "lan", "sandbox": "netns:old", "ipv4_address": "192.168.1.194"}]
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.cnm.network.plugins.module_utils.host import run_module
from ansible_collections.cnm.network.plugins.module_utils.macvlan import plan_macvlan_absent, plan_macvlan_present
from ansible_collections.cnm.network.plugins.module_utils.model import MacvlanNetwork, check_name


def main() -> None:
    module = AnsibleModule(
        argument_spec=dict(
            name=dict(type="str", required=True),
            state=dict(type="str", choices=["present", "absent"], default="present"),
            parent=dict(type="str"),
            mode=dict(type="str", choices=["bridge", "private", "vepa", "passthru"]),
            subnet=dict(type="str"),
            gateway=dict(type="str"),
            ip_range=dict(type="str"),
            ipv6_subnet=dict(type="str"),
            ipv6_gateway=dict(type="str"),
            mtu=dict(type="int"),
            host_access=dict(type="bool"),
            host_access_ip=dict(type="str"),
            shim_name=dict(type="str"),
            force=dict(type="bool", default=False),
        ),
        required_if=[("host_access", True, ["host_access_ip"])],
        supports_check_mode=True,
    )
    params = module.params

    def build(host):
        if params["state"] == "absent":
            return plan_macvlan_absent(host, check_name("name", params["name"]), params["force"])
        return plan_macvlan_present(host, MacvlanNetwork.from_params(host.declared(params, "macvlan")))

    run_module(module, build)


if __name__ == "__main__":
    main()
