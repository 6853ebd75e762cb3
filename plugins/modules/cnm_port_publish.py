#!/usr/bin/python
# Copyright: cnm.network contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: cnm_port_publish
short_description: Publish endpoint ports on the host, as C(docker run -p 4000:80) does
version_added: 0.1.0
description:
  - Publishes ports of an endpoint made by M(cnm.network.cnm_endpoint) on the host, with nftables DNAT
    in the collection's own table C(inet cnm), reachable from other hosts, from the host itself on its
    own addresses, from C(127.0.0.1) when the binding allows it, and from other containers (hairpin).
  - A port bound to all addresses or to C(127.0.0.1) is guarded as Docker does - packets to C(127.0.0.0/8)
    that arrive from outside the host are dropped - and C(route_localnet) is set on that network's
    bridge only (recorded, and restored when the last such port goes).
  - A host port already published to another endpoint, or bound by a process on the host, is refused
    naming the owner. UDP conntrack entries of a changed mapping are flushed (needs the C(conntrack) command).
  - IPv4 and IPv6 as Docker 27+ does - C(4000:80) binds all IPv4 host addresses and, when the endpoint has an IPv6
    address, all IPv6 ones (C(0.0.0.0) and C([::])); C(0.0.0.0:4000:80) binds IPv4 only, C([::]:4000:80) IPv6 only,
    C([2001:db8::1]:4000:80) one IPv6 host address. Conflicts are checked per family, so an IPv4-only and an
    IPv6-only binding of one host port (to different endpoints) do not clash.
  - One binding has one spelling - C(0.0.0.0:4000:80) of an endpoint without IPv6 is C(4000:80), and
    C(0.0.0.0:4000:80) plus C([::]:4000:80) of one endpoint and container port is C(4000:80) - so publishing one after
    the other changes nothing and the store holds one entry (reported in C(ports) in that spelling).
  - The host port is not held by a process as Docker's proxy holds it. A host process that binds an already
    published port later is bypassed by the DNAT; each run warns about it (C(host port is already bound by process
    PID (COMM) on this host)) and M(cnm.network.cnm_info) reports it as C(port_shadowed) drift.
  - Detaching an endpoint with M(cnm.network.cnm_endpoint) unpublishes its ports in the same run.
  - The endpoint is named as it was attached - C(netns), C(netns_path), C(pid) or C(container) (with
    C(container_runtime)) - or by C(container_ip).
requirements:
  - nftables (the C(nft) command) on the managed node and Python 3.9 or newer
attributes:
  diff_mode:
    support: full
    description: Shows the rules (by comment) and the store before and after.
options:
  network:
    description:
      - The network of the endpoint whose ports are published. Required unless every item of C(endpoints) names it.
    type: str
  state:
    description:
      - C(present) publishes the listed ports (others of the endpoint stay); C(absent) removes the listed
        ports, or all of the endpoint's ports when C(ports) is omitted.
    type: str
    choices: [present, absent]
    default: present
  exclusive:
    description:
      - With C(state=present), the listed ports become all the ports of each endpoint named; its other published
        ports are removed in the same run (what the role C(cnm.network.cnm_networks) uses to prune).
    type: bool
    default: false
  container_ip:
    description:
      - The endpoint by its IPv4 or IPv6 address on C(network).
    type: str
  ports:
    description:
      - Port mappings, in Docker's string form (C(4000:80), C(127.0.0.1:4000:80/tcp), C([2001:db8::1]:4000:80),
        C([::]:4000:80), C(8000-8010:80-90), C(53:53/udp)) or as dicts with C(host_ip), C(host_port),
        C(container_port), C(protocol) (tcp, udp, sctp). An IPv6 host address is written in brackets.
      - A host port is required (Docker's ephemeral ports cannot be declared). Without a host address the
        network's C(host_binding_ip) is used, else all host addresses of each family the endpoint has.
      - An IPv6 host address needs an endpoint with an IPv6 address, an IPv4 one an endpoint with an IPv4 address.
        C([::1]) is refused - the kernel cannot forward IPv6 loopback to a container (Docker's userland proxy does);
        use C(127.0.0.1). A C(4000:80) or C([::]) binding is not reachable on C(::1) either.
    type: list
    elements: raw
  endpoints:
    description:
      - Several endpoints at once; each item takes C(network), C(netns), C(netns_path), C(pid), C(container),
        C(container_runtime), C(container_ip), C(ports) and C(state), the top-level values being the defaults.
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
      container_ip:
        description: As the top-level C(container_ip).
        type: str
      ports:
        description: As the top-level C(ports).
        type: list
        elements: raw
notes:
  - Ports cannot be published on internal networks.
  - Docker 27+ with its userland proxy also serves C([::]) of an endpoint without IPv6 (proxying to its IPv4 address);
    without a proxy such a binding is refused, and C(4000:80) of such an endpoint binds IPv4 only (as Docker with
    C(userland-proxy=false)).
seealso:
  - module: cnm.network.cnm_endpoint
  - module: cnm.network.cnm_bridge
extends_documentation_fragment:
  - cnm.network.cnm
  - cnm.network.cnm.sandbox
"""

EXAMPLES = r"""
- name: docker run -p 4000:80 --network web (the container in sandbox web1)
  cnm.network.cnm_port_publish:
    network: web
    netns: web1
    ports: ["4000:80"]

- name: Loopback only, a UDP port and a range
  cnm.network.cnm_port_publish:
    network: web
    netns: web1
    ports:
      - "127.0.0.1:8080:80/tcp"
      - "53:53/udp"
      - "8000-8010:9000-9010"
      - {host_ip: 192.0.2.11, host_port: 8443, container_port: 443}

- name: IPv6 (the endpoint is on a network with ipv6_subnet) - all IPv6 host addresses, and one of them
  cnm.network.cnm_port_publish:
    network: web6
    netns: web1
    ports: ["[::]:8080:80", "[2001:db8::10]:8443:443"]

- name: One port on each of many endpoints in one task
  cnm.network.cnm_port_publish:
    network: web
    endpoints:
      - {netns: app0, ports: ["10000:80"]}
      - {netns: app1, ports: ["10001:80"]}

- name: docker run --network none --name web3 ... -p 8080:80, the cnm way (after cnm_endpoint attached web3)
  cnm.network.cnm_port_publish:
    network: web
    container: web3
    ports: ["8080:80"]

- name: Only port 8443 stays published for web1 (its others are removed)
  cnm.network.cnm_port_publish:
    network: web
    netns: web1
    ports: ["8443:443"]
    exclusive: true

- name: Unpublish everything of web1
  cnm.network.cnm_port_publish:
    network: web
    netns: web1
    state: absent
"""

RETURN = r"""
published:
  description: One entry per endpoint handled, in order.
  returned: always
  type: list
  elements: dict
  contains:
    network:
      description: Network name.
      type: str
      sample: web
    sandbox:
      description: The endpoint's sandbox as C(KIND:VALUE) (C(container:RUNTIME/NAME) for a container).
      type: str
      sample: "netns:web1"
    container_ip:
      description: The endpoint's IPv4 address, or null when it has none (state present).
      type: str
      sample: 172.30.0.2
    container_ipv6:
      description: The endpoint's IPv6 address, or null when it has none (state present).
      type: str
      sample: "fd00:30::2"
    ports:
      description: The mappings now published, in Docker's form (state present).
      type: list
      elements: str
      sample: ["4000:80/tcp"]
    removed:
      description:
        - The host sides removed (state absent). Removing one family of a C(4000:80) binding of a dual-stack endpoint
          (C(0.0.0.0:4000:80)) lists C(tcp/*:4000), which becomes C(tcp/[::]:4000).
      type: list
      elements: str
      sample: ["tcp/*:4000"]
changes:
  description: The changes made (or, in check mode, that would be made), in order.
  returned: always
  type: list
  elements: str
  sample: ["apply 4 nft command(s) to the cnm tables", "write the store"]
reclaimed:
  description:
    - Address leases freed on the network because their sandbox no longer exists (checked before planning, so a port
      of a vanished sandbox does not block a new one); C(ports) lists the published ports that went with a lease.
  returned: when leases were reclaimed
  type: list
  elements: dict
  sample: [{"network": "web", "sandbox": "netns:old", "ipv4_address": "172.30.0.3", "ports": ["tcp/*:4000"]}]
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.cnm.network.plugins.module_utils.host import run_module
from ansible_collections.cnm.network.plugins.module_utils.model import batch_items, check_container_runtime
from ansible_collections.cnm.network.plugins.module_utils.publish import (
    PUBLISH_SANDBOX_OPTIONS,
    PublishPlanner,
    PublishSpec,
    check_containers,
)

ITEM_OPTIONS = dict(
    network=dict(type="str"),
    state=dict(type="str", choices=["present", "absent"]),
    netns=dict(type="str"),
    netns_path=dict(type="path"),
    pid=dict(type="int"),
    container=dict(type="str"),
    container_runtime=dict(type="str", choices=["docker", "podman"]),
    container_ip=dict(type="str"),
    ports=dict(type="list", elements="raw"),
)


def main() -> None:
    argument_spec = dict(
        ITEM_OPTIONS,
        state=dict(type="str", choices=["present", "absent"], default="present"),
        exclusive=dict(type="bool", default=False),
    )
    argument_spec["endpoints"] = dict(type="list", elements="dict", options=ITEM_OPTIONS)
    module = AnsibleModule(
        argument_spec=argument_spec,
        mutually_exclusive=[PUBLISH_SANDBOX_OPTIONS],
        required_one_of=[("network", "endpoints")],
        supports_check_mode=True,
    )
    items = batch_items(module.params, ITEM_OPTIONS, PUBLISH_SANDBOX_OPTIONS)

    def build(host):
        check_container_runtime(module.params, PUBLISH_SANDBOX_OPTIONS)
        specs = [PublishSpec.from_params(options, where) for options, where in items]
        check_containers(host, specs)
        planner = PublishPlanner(host, exclusive=module.params["exclusive"])
        return {"published": [planner.plan(spec) for spec in specs]}

    run_module(module, build)


if __name__ == "__main__":
    main()
