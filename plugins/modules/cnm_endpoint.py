#!/usr/bin/python
# Copyright: cnm.network contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: cnm_endpoint
short_description: Join sandboxes (network namespaces) to networks, as C(docker run --network) does
version_added: 0.1.0
description:
  - Attaches a sandbox (a network namespace given by name, path, process ID or container) to a network made by
    M(cnm.network.cnm_bridge) with a veth pair whose inner end is created directly inside the sandbox
    (named C(ethN)), whose host end joins the bridge, with the endpoint's MAC, MTU, addresses, default
    route via the gateway, extra routes and interface sysctls. C(lo) is brought up.
  - A Docker or Podman container started with C(--network none) joins cnm networks by C(container) (its name
    or ID) and C(container_runtime); its namespace is that of its init process, found by one
    C(docker container inspect) (or C(podman container inspect)) call for all containers of the task.
  - C(network=host) binds a namespace name to the host's own namespace (C(docker run --net=host));
    C(network=none) makes a sandbox with only C(lo), up (C(docker run --net=none)).
  - Addresses are allocated from the network's C(ip_range) (lowest free) unless given; an endpoint keeps
    its address on every rerun. Leases of sandboxes that no longer exist are reclaimed.
  - A rerun repairs drift (addresses or routes changed, the veth deleted out of band).
  - Options left out keep the attached endpoint's values (a rerun that names only the network and the sandbox changes
    nothing); the defaults documented apply when an endpoint is attached.
  - On an overlay with C(control_plane=evpn) the endpoint also gets what FRR advertises for it at once - a static FDB
    entry of its MAC on its bridge port and a permanent neighbour (its IPv4 address to its MAC) on the bridge, removed
    again on detach.
  - C(endpoints) converges a whole list in one task over one netlink session per namespace;
    the top-level options are the defaults of every item.
requirements:
  - Python 3.9 or newer on the managed node (and no Python library, the collection speaks netlink itself)
attributes:
  diff_mode:
    support: full
    description: Shows each endpoint (interfaces, MAC, MTU, addresses, routes, sysctls), each sandbox (its default
      routes and
      Docker's sandbox sysctls) and the store before and after.
options:
  network:
    description:
      - Name of a network made by M(cnm.network.cnm_bridge), or C(host), or C(none).
      - Required unless every item of C(endpoints) names its network.
      - Refused, before any change, when the network's bridge name is held by a foreign device (no cnm alias), when
        its bridge already has the kernel's 1023 ports, or when the sandbox (compared by namespace, whatever option
        names it) already has an endpoint on it.
    type: str
  state:
    description:
      - C(present) attaches (or repairs) the endpoint, C(absent) detaches it and releases its addresses.
    type: str
    choices: [present, absent]
    default: present
  create_netns:
    description:
      - Create the named namespace C(netns) when it does not exist.
    type: bool
    default: true
  delete_netns:
    description:
      - With C(state=absent), also delete the named namespace C(netns) (never the host's).
    type: bool
    default: false
  ifname:
    description:
      - Name of the interface inside the sandbox. Defaults to the lowest free C(ethN) in the sandbox.
      - At most 15 bytes of letters, digits, C(_), C(.) and C(-) (no wildcard, quote, C(/) or whitespace).
      - Left out, an attached endpoint keeps its interface.
    type: str
  ipv4_address:
    description:
      - Static IPv4 address inside the network's subnet. Allocated from C(ip_range) when omitted.
      - Left out, an attached endpoint keeps its address (static or allocated).
    type: str
  ipv6_address:
    description:
      - Static IPv6 address inside the network's C(ipv6_subnet). Allocated when omitted and the network has IPv6.
      - Left out, an attached endpoint keeps its address (static or allocated).
    type: str
  mac_address:
    description:
      - MAC of the inner interface. Defaults to Docker's C(02:42:) followed by the four bytes of the IPv4 address.
      - A MAC that another endpoint of the network already has is refused.
      - Left out, an attached endpoint keeps its MAC.
    type: str
  default_route:
    description:
      - Let this endpoint hold the sandbox's default routes via the network's gateways when it is the sandbox's
        best endpoint for them (see C(gw_priority)). C(false) keeps it out of the choice.
      - A sandbox has one IPv4 and one IPv6 default route, each held by one endpoint, chosen as Docker 28 does
        whenever an endpoint of the sandbox is attached or detached; the highest C(gw_priority), then a
        dual-stack endpoint before a single-stack one, then the network name in lexicographic order. Detaching
        the holder moves the default route to the next endpoint; IPv4 and IPv6 are chosen separately (an IPv6
        default needs an endpoint with an IPv6 address). Internal networks never hold it; a default route on an
        interface that is not a cnm endpoint (or one given in C(routes)) is left alone and no other is added.
      - Left out, an attached endpoint keeps its value; a new one gets V(true).
    type: bool
  gw_priority:
    description:
      - Docker 28's C(--gw-priority) (C(docker network connect --gw-priority)) for this endpoint; among the
        sandbox's endpoints the highest priority holds the default route (see C(default_route)).
      - A 64-bit integer, negative allowed.
      - Left out, an attached endpoint keeps its value; a new one gets V(0).
    type: int
  name:
    description:
      - The endpoint's DNS name on its network (Docker's container name, under which other containers of the
        network reach it). Omitted, the sandbox's own name is its name (a named namespace's C(netns), a
        C(container)'s name as given) when that is a DNS name; a C(pid) or C(netns_path) sandbox has none unless given.
      - Dot-separated labels of 1 to 63 letters, digits, C(_) and C(-) (not first or last), at most 253 characters.
        No two endpoints of one network share a name (compared without case).
      - Kept in the store and reported by M(cnm.network.cnm_info); not allowed with network C(host) or C(none).
      - Left out, an attached endpoint keeps its name.
    type: str
  aliases:
    description:
      - Network-scoped aliases (Docker's C(--network-alias)), DNS names as C(name); several endpoints of a network
        may share an alias (it stands for all of them). Not allowed with network C(host) or C(none).
      - Left out, an attached endpoint keeps its aliases; an empty list removes them.
    type: list
    elements: str
  routes:
    description:
      - Extra routes through the endpoint's interface.
      - Left out, an attached endpoint keeps its routes; an empty list removes them.
    type: list
    elements: dict
    suboptions:
      dst:
        description: Destination CIDR, or C(default).
        type: str
        required: true
      gateway:
        description: Next hop on the network's subnet; omitted for an on-link route.
        type: str
  sysctls:
    description:
      - Network sysctls set inside the sandbox, C(IFNAME) standing for the endpoint's interface,
        for example C(net.ipv4.conf.IFNAME.rp_filter=2) (Docker's endpoint sysctls).
      - Every sandbox gets the sysctls Docker sets in a container's namespace, C(net.ipv4.ip_unprivileged_port_start=0)
        and C(net.ipv4.ping_group_range=0 2147483647), and while none of its endpoints has IPv6,
        C(net.ipv6.conf.all.disable_ipv6=1), C(net.ipv6.conf.default.disable_ipv6=1) and
        C(net.ipv6.conf.lo.disable_ipv6=1)
        (C(lo) gets C(0) again while one has). An endpoint's interface has IPv6 on exactly when its network has IPv6
        (C(net.ipv6.conf.IFNAME.disable_ipv6)). Naming any of these here (on any endpoint of the sandbox) replaces that
        default.
      - Never applied to the host's own namespace (a C(pid) or C(netns_path) that is the host's); nothing is restored
        when the last endpoint is detached (the values belong to the sandbox, as in Docker, where they die with the
        container).
      - Left out, an attached endpoint keeps its sysctls; an empty dict drops them from the endpoint.
    type: dict
  endpoints:
    description:
      - Several endpoints at once; each item takes the options above (except C(endpoints)),
        the top-level values being the defaults.
    type: list
    elements: dict
    suboptions:
      network:
        description: As the top-level C(network).
        type: str
      state:
        description: As the top-level C(state).
        type: str
        choices: [present, absent]
      netns:
        description: As the top-level C(netns).
        type: str
      netns_path:
        description: As the top-level C(netns_path).
        type: path
      pid:
        description: As the top-level C(pid).
        type: int
      container:
        description: As the top-level C(container).
        type: str
      container_runtime:
        description: As the top-level C(container_runtime) (the top-level value is the default).
        type: str
        choices: [docker, podman]
      create_netns:
        description: As the top-level C(create_netns).
        type: bool
      delete_netns:
        description: As the top-level C(delete_netns).
        type: bool
      ifname:
        description: As the top-level C(ifname).
        type: str
      ipv4_address:
        description: As the top-level C(ipv4_address).
        type: str
      ipv6_address:
        description: As the top-level C(ipv6_address).
        type: str
      mac_address:
        description: As the top-level C(mac_address).
        type: str
      default_route:
        description: As the top-level C(default_route).
        type: bool
      gw_priority:
        description: As the top-level C(gw_priority).
        type: int
      name:
        description: As the top-level C(name) (a top-level C(name) would give every item the same one).
        type: str
      aliases:
        description: As the top-level C(aliases).
        type: list
        elements: str
      routes:
        description: As the top-level C(routes).
        type: list
        elements: dict
        suboptions:
          dst:
            description: Destination CIDR, or C(default).
            type: str
            required: true
          gateway:
            description: Next hop on the network's subnet; omitted for an on-link route.
            type: str
      sysctls:
        description: As the top-level C(sysctls).
        type: dict
notes:
  - The host end of the veth is named C(ve-) plus a hash of network and sandbox and carries the alias
    C(cnm:endpoint:NETWORK|SANDBOX); the module never deletes an interface without it.
  - Named namespaces are global on a machine; in a lab of namespace hosts give sandboxes distinct names.
  - A container's sandbox is stored as C(container:RUNTIME/NAME), so a restarted container (new process, new namespace)
    gets the same address and host veth name on the next run. A stopped or removed container's namespace is gone with
    its veth; its lease is reclaimed by a later run, and C(state=absent) removes the rest (lease, published ports).
  - Run the module where the runtime's command reaches its engine (C(DOCKER_HOST) in the task's C(environment) for
    a non-default socket). Name a container the same way (name or ID) on every run.
seealso:
  - module: cnm.network.cnm_bridge
extends_documentation_fragment:
  - cnm.network.cnm
  - cnm.network.cnm.sandbox
"""

EXAMPLES = r"""
- name: docker run --network web (a sandbox named web1 with an allocated address)
  cnm.network.cnm_endpoint:
    network: web
    netns: web1

- name: docker run --network web --name api --network-alias backend (named api, reached as api or backend)
  cnm.network.cnm_endpoint:
    network: web
    netns: api-1
    name: api
    aliases: [backend]

- name: A static address, MAC, extra route and an interface sysctl
  cnm.network.cnm_endpoint:
    network: backend
    netns: db1
    ifname: eth1
    ipv4_address: 10.40.8.10
    mac_address: "02:42:0a:28:08:0a"
    routes:
      - dst: 10.99.0.0/16
        gateway: 10.40.0.254
    sysctls:
      net.ipv4.conf.IFNAME.rp_filter: 2

- name: docker run --network none --name web3 ... then attach the container to web
  cnm.network.cnm_endpoint:
    network: web
    container: web3

- name: Podman containers, several in one task (one inspect call)
  cnm.network.cnm_endpoint:
    network: web
    container_runtime: podman
    endpoints:
      - container: api1
      - container: api2
        ipv4_address: 172.30.0.60

- name: Detach a container (also cleans up after a container that was already removed)
  cnm.network.cnm_endpoint:
    network: web
    container: web3
    state: absent

- name: Attach a running process's namespace
  cnm.network.cnm_endpoint:
    network: web
    pid: "{{ app_pid }}"

# app_sandboxes is a list such as [{netns: app0}, {netns: app1, ipv4_address: 172.30.0.50}]
- name: Many sandboxes in one task
  cnm.network.cnm_endpoint:
    network: web
    endpoints: "{{ app_sandboxes }}"

- name: docker network connect --gw-priority 10 (web holds the default route although db sorts first)
  cnm.network.cnm_endpoint:
    netns: app1
    endpoints:
      - network: web
        gw_priority: 10
      - network: db

- name: docker run --net=host (the name 'monitor' is bound to the host's own namespace)
  cnm.network.cnm_endpoint:
    network: host
    netns: monitor

- name: docker run --net=none
  cnm.network.cnm_endpoint:
    network: none
    netns: isolated

- name: Detach and delete the sandbox
  cnm.network.cnm_endpoint:
    network: web
    netns: web1
    state: absent
    delete_netns: true
"""

RETURN = r"""
endpoint:
  description: The endpoint after the run (or as it would be, in check mode); given without C(endpoints).
  returned: when C(endpoints) is not used
  type: dict
  contains:
    network:
      description: Network name.
      type: str
      sample: web
    netns:
      description: The sandbox's namespace name (or C(netns_path), C(pid), C(container), whichever was given, under that
        key).
      type: str
      sample: web1
    sandbox:
      description: The sandbox as C(KIND:VALUE), C(container:RUNTIME/NAME) for a container.
      type: str
      sample: "netns:web1"
    ifname:
      description: Interface inside the sandbox.
      type: str
      sample: eth0
    host_ifname:
      description: Host end of the veth, a port of the bridge.
      type: str
      sample: ve-3f2a9c01b7d
    ipv4_address:
      description: IPv4 address.
      type: str
      sample: 172.30.0.2
    ipv6_address:
      description: IPv6 address, or null.
      type: str
      sample: "fd00:30::2"
    mac_address:
      description: MAC address of the inner interface.
      type: str
      sample: "02:42:ac:1e:00:02"
    name:
      description: Its DNS name on the network, or null (see the option C(name)).
      type: str
      sample: web1
    aliases:
      description: Its network-scoped aliases.
      type: list
      elements: str
      sample: [web]
    state:
      description: C(absent) after a detach.
      type: str
      sample: absent
endpoints:
  description: One entry per item of C(endpoints), in order, with the keys of C(endpoint).
  returned: when C(endpoints) is used
  type: list
  elements: dict
  sample: [{"network": "web", "netns": "app0", "ifname": "eth0", "ipv4_address": "172.30.0.2"}]
changes:
  description: The changes made (or, in check mode, that would be made), in order.
  returned: always
  type: list
  elements: str
  sample: ["create veth ve-3f2a9c01b7d (host) / eth0 (in web1)", "add address 172.30.0.2/24 to eth0 in web1"]
reclaimed:
  description:
    - Address leases freed because their sandbox no longer exists (a host veth it left on the network is deleted).
    - C(ports) lists the published ports that went with a lease, with their nft elements and conntrack entries.
  returned: when leases were reclaimed
  type: list
  elements: dict
  sample: [{"network": "web", "sandbox": "netns:old", "ipv4_address": "172.30.0.3"}]
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.cnm.network.plugins.module_utils.endpoint import (
    EndpointPlanner,
    check_containers,
    container_not_yet_running,
)
from ansible_collections.cnm.network.plugins.module_utils.host import run_module
from ansible_collections.cnm.network.plugins.module_utils.model import (
    SANDBOX_OPTIONS,
    EndpointSpec,
    batch_items,
    check_container_runtime,
)

ITEM_OPTIONS = dict(
    network=dict(type="str"),
    state=dict(type="str", choices=["present", "absent"]),
    netns=dict(type="str"),
    netns_path=dict(type="path"),
    pid=dict(type="int"),
    container=dict(type="str"),
    container_runtime=dict(type="str", choices=["docker", "podman"]),
    create_netns=dict(type="bool"),
    delete_netns=dict(type="bool"),
    ifname=dict(type="str"),
    ipv4_address=dict(type="str"),
    ipv6_address=dict(type="str"),
    mac_address=dict(type="str"),
    default_route=dict(type="bool"),
    gw_priority=dict(type="int"),
    name=dict(type="str"),
    aliases=dict(type="list", elements="str"),
    routes=dict(type="list", elements="dict"),
    sysctls=dict(type="dict"),
)
TOP_DEFAULTS = dict(state="present", create_netns=True, delete_netns=False)
ROUTE_OPTIONS = dict(dst=dict(type="str", required=True), gateway=dict(type="str"))


def main() -> None:
    argument_spec = {name: dict(option, default=TOP_DEFAULTS.get(name)) for name, option in ITEM_OPTIONS.items()}
    argument_spec["routes"] = dict(type="list", elements="dict", options=ROUTE_OPTIONS)
    item_spec = dict(ITEM_OPTIONS, routes=dict(type="list", elements="dict", options=ROUTE_OPTIONS))
    argument_spec["endpoints"] = dict(type="list", elements="dict", options=item_spec)
    module = AnsibleModule(
        argument_spec=argument_spec,
        mutually_exclusive=[SANDBOX_OPTIONS],
        required_one_of=[("network", "endpoints")],
        supports_check_mode=True,
    )
    items = batch_items(module.params, ITEM_OPTIONS, SANDBOX_OPTIONS)

    def build(host):
        check_container_runtime(module.params)
        planner = EndpointPlanner(host)
        specs = [host.declared_endpoint(EndpointSpec.from_params(options, where), options) for options, where in items]
        waiting = check_containers(host, specs)
        planner.expect([spec for spec in specs if spec not in waiting])
        results = [container_not_yet_running(host, spec) if spec in waiting else planner.plan(spec) for spec in specs]
        planner.finish()
        return {"endpoints": results} if module.params["endpoints"] is not None else {"endpoint": results[0]}

    run_module(module, build)


if __name__ == "__main__":
    main()
