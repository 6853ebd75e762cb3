#!/usr/bin/python
# Copyright: cnm.network contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: cnm_info
short_description: What exists - networks, endpoints, published ports, overlay peers - and where the kernel drifted from
  it
version_added: 0.1.0
description:
  - Reports, like C(docker network inspect), every cnm network of the host (its driver, subnets, options and the
    kernel state of its devices), every endpoint (sandbox, interface, addresses, MAC, the host end of its veth),
    every published port and the remote VTEPs of every overlay, read from the collection's store under
    C(/run/cnm-network) and from the kernel (one netlink session per namespace, one C(nft) listing).
  - Compares the two and lists each difference in RV(drift) - a device deleted or changed by hand, an endpoint
    whose sandbox is gone, a published port without its nftables rules, FDB entries no peer lists, kernel
    objects carrying a C(cnm:) alias that no record claims. A rerun of the module that made the object
    (M(cnm.network.cnm_bridge), M(cnm.network.cnm_overlay), M(cnm.network.cnm_endpoint),
    M(cnm.network.cnm_port_publish)) repairs most of them.
  - Changes nothing, in check mode or not; C(changed) is always false.
  - Networks of any driver are reported with every key their store record holds; the devices a record names
    (C(bridge_name), C(vxlan_name), C(shim_name), C(parent)) are checked where they exist.
requirements:
  - Python 3.9 or newer on the managed node (and no Python library, the collection speaks netlink itself);
    the C(nft) command to check firewall rules (without it they are not checked, with a warning)
attributes:
  check_mode:
    support: full
    description: Runs the same read-only report in check mode.
  diff_mode:
    support: none
    description: Nothing changes, so there is nothing to show.
options:
  network:
    description:
      - Report only these networks (a name or a list of names), their endpoints, published ports and peers.
      - A name the store does not hold gives a warning, not a failure.
    type: list
    elements: str
  netns:
    description:
      - Report only the endpoints of this sandbox, by network namespace name, with their published ports and the
        networks they are on. A sandbox given another way (C(netns_path), C(pid)) matches when it is the same namespace.
      - At most one of C(netns), C(netns_path), C(pid) and C(container).
    type: str
  netns_path:
    description:
      - As C(netns), the sandbox by namespace file path, for example C(/proc/1234/ns/net).
    type: path
  pid:
    description:
      - As C(netns), the sandbox by process ID.
    type: int
  container:
    description:
      - As C(netns), the sandbox of a Docker or Podman container (by name or ID), as M(cnm.network.cnm_endpoint)
        attached it.
    type: str
  container_runtime:
    description:
      - The runtime of C(container). Defaults to C(docker).
    type: str
    choices: [docker, podman]
  gather:
    description:
      - What to report. Drift is reported for what is gathered (and for host links with a C(cnm:) alias that no
        record claims). C(endpoints) opens a netlink session in each endpoint's sandbox; leave it out for a quick look.
    type: list
    elements: str
    choices: [networks, endpoints, ports, peers]
    default: [networks, endpoints, ports, peers]
  frr_vty_socket:
    description:
      - The directory of FRR's vty sockets, as C(vtysh --vty_socket DIR) takes it, where FRR runs with sockets of its
        own (the role C(cnm.network.cnm_overlay) runs FRR in each lab host with
        C(/run/cnm-network/frr/NAMESPACE)). Omitted, vtysh looks where FRR's C(frr.service) puts them.
      - Used only when an overlay with C(control_plane=evpn) is reported with C(peers) gathered (RV(evpn)).
    type: path
notes:
  - The store is read under the same per-host lock the other modules take, so a report never sees a half-applied run.
  - Drift kinds
    C(network_device_missing), C(network_device_foreign) (the device exists with another kind or alias),
    C(network_device_down), C(network_mtu), C(network_addresses) (bridge gateway addresses, or a shim without
    C(host_access_ip)),
    C(vxlan_settings) (VNI, local address, port, learning, proxy), C(network_rules_missing) (its nftables rules),
    C(endpoint_network_missing), C(endpoint_sandbox_missing), C(endpoint_interface_missing),
    C(endpoint_host_interface_missing), C(endpoint_interface_foreign) (without a host end, as on macvlan, the interface
    lacks the endpoint's alias),
    C(endpoint_not_paired) (the two ends are not one veth, or the host end lost its alias),
    C(endpoint_not_on_bridge), C(endpoint_down), C(endpoint_mtu), C(endpoint_mac), C(endpoint_addresses),
    C(port_endpoint_missing), C(port_rules_missing),
    C(port_shadowed) (a host process listens on the published host port - the DNAT takes its connections; C(found) names
    the process),
    C(firewall_rules_missing) (rules every published port needs),
    C(peer_fdb_missing), C(peer_fdb_stale), C(peer_neighbour_missing), C(peer_neighbour_stale),
    C(unclaimed_device) (a host link with a C(cnm:) alias no record claims), C(unclaimed_rule) (a rule in C(inet cnm)
    the store does not render),
    C(sandbox_default_route_missing) (a sandbox lacks the IPv4 or IPv6 default route that M(cnm.network.cnm_endpoint)
    gives it - through
    the gateway of the best ranked endpoint, as Docker chooses; not reported when an endpoint's C(routes) or an
    interface that is no
    endpoint holds that version's default route),
    C(endpoint_port_flags) (the host end of an endpoint's veth lost C(hairpin), or its C(isolated) flag differs from the
    network's
    C(icc) - isolated exactly when C(icc) is false),
    C(host_sysctl) (a host sysctl the networks need has another value - C(net.ipv4.ip_forward) for a non-internal bridge
    or overlay
    network, C(net.ipv6.conf.all.forwarding) for one with IPv6, C(net.ipv4.conf.BRIDGE.route_localnet) for a port
    published on 127.0.0.1
    or all addresses; reported with RV(drift[].network) null when several networks need it),
    C(netns_stub) (an empty file in C(/run/netns) with no namespace mounted on it, left by a run killed between naming a
    namespace and
    binding it or between unmounting and unlinking it; an attach to the name binds a new namespace, C(state=absent) of
    M(cnm.network.cnm_endpoint) removes it; reported only when no C(network) is asked for),
    C(resolver_not_running) (networks with C(dns=true) exist and their resolver, aardvark-dns, is not running),
    C(resolver_config) (the resolver's files do not list what the store holds),
    C(resolver_not_listening) (the resolver runs but is not bound to a gateway of a network with C(dns=true));
    the three are repaired by the next run of any cnm module;
    on EVPN overlays (C(control_plane=evpn), FRR asked with one C(vtysh) run) C(evpn_frr_unreachable) (vtysh is missing
    or bgpd or zebra does not answer), C(evpn_session_down) (a BGP EVPN session that is not Established),
    C(evpn_vni_unknown) (zebra does not know the overlay's VNI), C(evpn_vtep_missing) (FRR knows a remote VTEP the
    VXLAN device has no flood entry towards), C(evpn_vtep_stale) (a flood entry towards a VTEP FRR does not know),
    C(evpn_mac_missing) (a remote MAC FRR knows that the FDB lacks or sends elsewhere) and C(evpn_mac_stale) (an
    FDB entry towards a VTEP that FRR does not know, such as the ghosts a killed zebra leaves; restarting zebra after
    flushing them, as the role does, repairs them).
  - C(network_mtu) also covers a bridge whose non-default MTU fell back to 1500; the modules set a bridge's MTU after
    creating it,
    so it no longer follows its ports and stays when the last endpoint leaves.
  - Repairs - C(endpoint_port_flags) and C(sandbox_default_route_missing) by a rerun of M(cnm.network.cnm_endpoint) on
    the endpoint's
    sandbox, C(host_sysctl) by any cnm module run (each reconciles the firewall and the sysctls it needs).
  - C(unclaimed_rule) is reported only without filters.
seealso:
  - module: cnm.network.cnm_bridge
  - module: cnm.network.cnm_overlay
  - module: cnm.network.cnm_endpoint
  - module: cnm.network.cnm_port_publish
extends_documentation_fragment:
  - cnm.network.cnm
"""

EXAMPLES = r"""
- name: Everything cnm made on this host (docker network inspect for all networks)
  cnm.network.cnm_info:
  register: cnm

- name: Fail when the kernel drifted from what cnm recorded
  ansible.builtin.assert:
    that: cnm.drift | length == 0
    fail_msg: "{{ cnm.drift | map(attribute='message') | list }}"

- name: An EVPN overlay - BGP sessions, remote VTEPs and MACs as FRR and the kernel hold them
  cnm.network.cnm_info:
    network: ov1
    gather: [peers]
  register: ov1

- name: Every BGP EVPN session is up
  ansible.builtin.assert:
    that: ov1.evpn.sessions | rejectattr('established') | list | length == 0

- name: One network and its endpoints
  cnm.network.cnm_info:
    network: web
    gather: [networks, endpoints]

- name: What the process with PID 4242 is attached to, and its published ports
  cnm.network.cnm_info:
    pid: 4242
    gather: [endpoints, ports]

- name: The networks and ports of a Docker container (docker inspect's NetworkSettings)
  cnm.network.cnm_info:
    container: web1
    gather: [endpoints, ports]

- name: The peers an overlay's VXLAN device has in its FDB
  cnm.network.cnm_info:
    network: ov0
    gather: [peers]
"""

RETURN = r"""
networks:
  description:
    - The networks, sorted by name, with every key of their store record (which depend on the driver; those of
      C(cnm_bridge), C(cnm_overlay), a macvlan and an ipvlan network are listed here) and the kernel state of their
      devices.
  returned: when O(gather) contains C(networks)
  type: list
  elements: dict
  contains:
    name:
      description: Network name.
      type: str
      sample: web
    driver:
      description: C(bridge), C(overlay), C(macvlan) or C(ipvlan).
      type: str
      sample: bridge
    subnet:
      description: IPv4 subnet.
      type: str
      sample: 172.30.0.0/24
    gateway:
      description: IPv4 gateway (on the bridge; the LAN's router for macvlan and ipvlan).
      type: str
      sample: 172.30.0.1
    ip_range:
      description: Where endpoint addresses are allocated.
      type: str
      sample: 172.30.0.0/24
    ipv6_subnet:
      description: IPv6 subnet, or null.
      type: str
      sample: "fd00:30::/64"
    ipv6_gateway:
      description: IPv6 gateway, or null.
      type: str
      sample: "fd00:30::1"
    mtu:
      description: MTU of the network's devices and endpoints.
      type: int
      sample: 1500
    bridge_name:
      description: The bridge (bridge and overlay drivers).
      type: str
      sample: br-web
    masquerade:
      description: Outgoing IPv4 is masqueraded (bridge and overlay).
      type: bool
      sample: true
    internal:
      description: No traffic leaves the network (bridge and overlay).
      type: bool
      sample: false
    icc:
      description: Endpoints may talk to each other (bridge and overlay).
      type: bool
      sample: true
    host_binding_ip:
      description: Default host address of published ports, or null.
      type: str
      sample: null
    vni:
      description: VXLAN network identifier (overlay).
      type: int
      sample: 4200
    local_ip:
      description: This host's VTEP address (overlay).
      type: str
      sample: 192.0.2.11
    port:
      description: VXLAN UDP port (overlay).
      type: int
      sample: 4789
    vxlan_name:
      description: The VXLAN device (overlay).
      type: str
      sample: vx-ov0
    restrict_peers:
      description: VXLAN is accepted only from the listed peers (overlay).
      type: bool
      sample: true
    control_plane:
      description: Who programs the overlay's remote entries, V(static) (the peers) or V(evpn) (FRR) (overlay).
      type: str
      sample: static
    peers:
      description: The peers as the store lists them (overlay), in the shape of cnm_overlay's
        O(cnm.network.cnm_overlay#module:peers).
      type: list
      elements: dict
      sample: [{"vtep": "192.0.2.12", "endpoints": [{"ip": "10.200.2.10", "mac": "02:42:0a:c8:02:0a"}]}]
    parent:
      description: The parent interface (macvlan, ipvlan).
      type: str
      sample: eth1
    mode:
      description: Macvlan mode (macvlan).
      type: str
      sample: bridge
    host_access:
      description: The host reaches the endpoints through a shim (macvlan).
      type: bool
      sample: true
    host_access_ip:
      description: The host's address on the shim (macvlan).
      type: str
      sample: 192.168.1.250
    shim_name:
      description: The host-side macvlan device (macvlan with host access).
      type: str
      sample: mvs-3f2a9c01b7d
    vlan_created:
      description: The parent C(IFACE.VID) sub-interface was created by cnm (macvlan, ipvlan).
      type: bool
      sample: false
    ipvlan_mode:
      description: Ipvlan mode, C(l2), C(l3) or C(l3s) (ipvlan).
      type: str
      sample: l2
    ipvlan_flag:
      description: Ipvlan flag, C(bridge), C(private) or C(vepa) (ipvlan).
      type: str
      sample: bridge
    default_on_link:
      description: The endpoints' default route goes through their interface, without a gateway (ipvlan C(l3), C(l3s)).
      type: bool
      sample: false
    devices:
      description: The devices the record names, with their kernel state.
      type: list
      elements: dict
      contains:
        role:
          description: C(bridge), C(vxlan), C(shim) or C(parent).
          type: str
          sample: bridge
        name:
          description: Interface name.
          type: str
          sample: br-web
        present:
          description: Whether the device exists; the keys below are given only when it does.
          type: bool
          sample: true
        kind:
          description: The kernel's link kind (C(bridge), C(vxlan), C(macvlan), C(veth), C(vlan)), null for a plain
            device.
          type: str
          sample: bridge
        mtu:
          description: MTU.
          type: int
          sample: 1500
        mac:
          description: MAC address.
          type: str
          sample: "02:9d:1b:5c:7e:41"
        up:
          description: Administratively up.
          type: bool
          sample: true
        operstate:
          description: Operational state as the kernel reports it (C(up), C(down), C(lowerlayerdown), C(unknown), ...).
          type: str
          sample: up
        alias:
          description: The interface alias (cnm's devices carry C(cnm:KIND:NAME)).
          type: str
          sample: "cnm:network:web"
        master:
          description: The bridge this device is a port of, or null.
          type: str
          sample: br-ov0
        addresses:
          description: Addresses (without IPv6 link-local ones).
          type: list
          elements: str
          sample: ["172.30.0.1/24", "fd00:30::1/64"]
        ports:
          description: The bridge's ports (role C(bridge)).
          type: list
          elements: str
          sample: ["ve-3f2a9c01b7d", "ve-8c0d2e5f11a"]
        vxlan:
          description: VXLAN settings (role C(vxlan)).
          type: dict
          sample: {"vni": 4200, "local": "192.0.2.11", "port": 4789, "learning": false, "proxy": true}
        mode:
          description: Macvlan mode, or C(vlan VID) of an 802.1Q device (kernels and releases that report it).
          type: str
          sample: bridge
    endpoints:
      description: The sandboxes attached to the network, as C(KIND:VALUE).
      type: list
      elements: str
      sample: ["netns:web1", "netns:web2"]
endpoints:
  description: The endpoints, sorted by network and sandbox, with every key of their store record and the kernel state
    of both ends.
  returned: when O(gather) contains C(endpoints)
  type: list
  elements: dict
  contains:
    network:
      description: Network name.
      type: str
      sample: web
    sandbox:
      description: The sandbox as C(KIND:VALUE).
      type: str
      sample: "netns:web1"
    netns:
      description: The sandbox's namespace name (or C(netns_path), C(pid), C(container), whichever it was attached by).
      type: str
      sample: web1
    container_runtime:
      description: The runtime of a container sandbox (C(docker) or C(podman)).
      returned: for container sandboxes
      type: str
      sample: docker
    ifname:
      description: Interface inside the sandbox.
      type: str
      sample: eth0
    host_ifname:
      description: Host end of the veth (null for drivers without one, such as macvlan).
      type: str
      sample: ve-3f2a9c01b7d
    link:
      description:
        - How the endpoint joins its network. C(veth) is a veth pair on the network's bridge (bridge and overlay
          networks); C(macvlan) and C(ipvlan) are links of that kind on the network's parent.
      type: str
      sample: veth
    parent:
      description: The network's parent interface (macvlan and ipvlan endpoints only).
      type: str
      sample: eth1
    shim_name:
      description: The network's host-access shim, or null (macvlan endpoints only).
      type: str
      sample: mvs-3f2a9c01b7d
    ipv4_address:
      description: IPv4 address.
      type: str
      sample: 172.30.0.2
    ipv6_address:
      description: IPv6 address, or null.
      type: str
      sample: "fd00:30::2"
    mac_address:
      description: MAC address of the interface in the sandbox.
      type: str
      sample: "02:42:ac:1e:00:02"
    static_ipv4:
      description: The IPv4 address was given, not allocated.
      type: bool
      sample: false
    static_ipv6:
      description: The IPv6 address was given, not allocated.
      type: bool
      sample: false
    static_mac:
      description: The MAC was given, not derived.
      type: bool
      sample: false
    default_route:
      description: The endpoint asked for default routes via the gateways.
      type: bool
      sample: true
    gw_priority:
      description: Its C(gw_priority) (Docker's C(--gw-priority)); absent in records written before the option existed.
      type: int
      sample: 0
    name:
      description: Its DNS name on the network (the option C(name) of M(cnm.network.cnm_endpoint)), or null.
      type: str
      sample: web1
    aliases:
      description: Its network-scoped aliases (Docker's C(--network-alias)).
      type: list
      elements: str
      sample: [web]
    routes:
      description: Extra routes it asked for.
      type: list
      elements: dict
      sample: [{"dst": "10.99.0.0/16", "gateway": "172.30.0.254"}]
    sysctls:
      description: Sysctls it asked for.
      type: dict
      sample: {"net.ipv4.conf.IFNAME.rp_filter": "2"}
    sandbox_exists:
      description: Whether the sandbox still exists.
      type: bool
      sample: true
    interface:
      description: The interface in the sandbox as the kernel has it (the keys of a network's C(devices), plus
        C(routes)), or null when missing.
      type: dict
      sample: {"name": "eth0", "kind": "veth", "mtu": 1500, "mac": "02:42:ac:1e:00:02", "up": true, "operstate": "up",
        "alias": null,
               "master": null, "addresses": ["172.30.0.2/24", "fd00:30::2/64"], "routes": ["default via 172.30.0.1",
               "default via fd00:30::1"]}
    host_interface:
      description: The host end of the veth as the kernel has it (with its bridge port flags C(isolated) and
        C(hairpin)), or null.
      type: dict
      sample: {"name": "ve-3f2a9c01b7d", "kind": "veth", "mtu": 1500, "mac": "a6:1f:44:0b:9e:20", "up": true,
        "operstate": "up",
               "alias": "cnm:endpoint:web|netns:web1", "master": "br-web", "addresses": [], "isolated": false,
               "hairpin": true}
ports:
  description: The published ports, one per host port, sorted by their key.
  returned: when O(gather) contains C(ports)
  type: list
  elements: dict
  contains:
    key:
      description:
        - The host side, C(PROTOCOL/HOST_IP:PORT) (C(*) for all addresses of the endpoint's families, C([::]) for all
          IPv6 addresses).
      type: str
      sample: "tcp/*:8080"
    published:
      description: Docker's C(-p) form.
      type: str
      sample: "8080:80/tcp"
    network:
      description: Network of the endpoint.
      type: str
      sample: web
    sandbox:
      description: The endpoint's sandbox as C(KIND:VALUE).
      type: str
      sample: "netns:web1"
    container_ip:
      description: The endpoint's IPv4 address the port is forwarded to from IPv4 host addresses, or null (no IPv4).
      type: str
      sample: 172.30.0.2
    container_ipv6:
      description:
        - The endpoint's IPv6 address the port is forwarded to from IPv6 host addresses, or null (no IPv6).
        - Absent for ports published before IPv6 ports existed.
      type: str
      sample: "fd00:30::2"
    host_ip:
      description:
        - Host address; null for all addresses of both families (those the endpoint has), C(0.0.0.0) for all IPv4
          and C(::) for all IPv6 addresses.
      type: str
      sample: null
    host_port:
      description: Host port.
      type: int
      sample: 8080
    container_port:
      description: Container port.
      type: int
      sample: 80
    protocol:
      description: C(tcp), C(udp) or C(sctp).
      type: str
      sample: tcp
    rules_present:
      description: Whether all its nftables rules are in table C(inet cnm); null when C(nft) is not installed.
      type: bool
      sample: true
peers:
  description:
    - The remote VTEPs of each overlay, sorted by network and address, the union of the store's peers and the VTEPs
      the VXLAN device's FDB sends to.
  returned: when O(gather) contains C(peers)
  type: list
  elements: dict
  contains:
    network:
      description: Overlay network name.
      type: str
      sample: ov0
    vtep:
      description: The remote VTEP address.
      type: str
      sample: 192.0.2.12
    recorded:
      description: The store lists this peer (false - a VTEP only the kernel's FDB has).
      type: bool
      sample: true
    endpoints:
      description: The endpoints behind it as the store lists them.
      type: list
      elements: dict
      sample: [{"ip": "10.200.2.10", "mac": "02:42:0a:c8:02:0a"}]
    flood:
      description: The FDB has the all-zero (flood) entry towards it; null when the VXLAN device is missing.
      type: bool
      sample: true
    fdb:
      description: MACs the FDB sends to this VTEP (without the flood entry); null when the VXLAN device is missing.
      type: list
      elements: str
      sample: ["02:42:0a:c8:02:0a"]
    neighbours:
      description: Neighbour entries of the VXLAN device for those MACs; null when the VXLAN device is missing.
      type: list
      elements: dict
      sample: [{"ip": "10.200.2.10", "mac": "02:42:0a:c8:02:0a"}]
evpn:
  description:
    - What FRR says about the EVPN overlays (C(control_plane=evpn)) and what the kernel holds for them - FRR programs
      their remote entries, so this is where a remote endpoint comes from on such an overlay.
  returned: when O(gather) contains C(peers) and an overlay with C(control_plane=evpn) is reported
  type: dict
  contains:
    reachable:
      description: Whether vtysh answered (FRR's bgpd and zebra run and are reachable).
      type: bool
      sample: true
    error:
      description: Why FRR did not answer, or null.
      type: str
      sample: null
    sessions:
      description: The BGP EVPN sessions of this host, with their state (C(established) when up).
      type: list
      elements: dict
      sample: [{"peer": "192.0.2.12", "state": "Established", "established": true}]
    networks:
      description:
        - Per EVPN overlay - its C(vni), whether zebra knows it (C(vni_known)), its remote VTEPs and remote MACs as FRR
          knows them (C(frr)) and as the VXLAN device's FDB holds them (C(kernel)); a side is null when it was not
          read (FRR unreachable, the device missing).
      type: list
      elements: dict
      sample:
        - network: ov
          vni: 4200
          vni_known: true
          remote_vteps: {"frr": ["192.0.2.12"], "kernel": ["192.0.2.12"]}
          remote_macs:
            frr: [{"mac": "02:42:0a:c8:02:00", "vtep": "192.0.2.12"}]
            kernel: [{"mac": "02:42:0a:c8:02:00", "vtep": "192.0.2.12"}]
resolver:
  description: The name resolver of the networks with C(dns=true) on this host (aardvark-dns).
  returned: when networks are gathered
  type: dict
  contains:
    running:
      description: Whether it runs.
      type: bool
      sample: true
    pid:
      description: Its process ID, or null.
      type: int
      sample: 4242
    networks:
      description:
        - Per network with C(dns=true) - the gateways it should listen on (C(listen)), those it is bound to
          (C(listening)) and the names and aliases it answers (C(names)).
      type: dict
      sample: {"web": {"listen": ["172.30.0.1"], "listening": ["172.30.0.1"], "names": ["api", "front"]}}
drift:
  description:
    - Every difference between the store and the kernel found in what was gathered, networks first, then endpoints,
      ports, the firewall, peers and unclaimed objects. Empty when they agree.
    - The kinds are listed in the notes above.
  returned: always
  type: list
  elements: dict
  contains:
    kind:
      description: What differs (see the notes).
      type: str
      sample: endpoint_mtu
    object:
      description: The object that differs.
      type: str
      sample: "interface eth0 in netns:web1"
    network:
      description: The network concerned, or null.
      type: str
      sample: web
    sandbox:
      description: The sandbox concerned (endpoints, ports), or null.
      type: str
      sample: "netns:web1"
    expected:
      description: What the store says (a value, a list or a dict, depending on the kind), or null.
      type: raw
      sample: 1500
    found:
      description: What the kernel has, or null.
      type: raw
      sample: 1400
    message:
      description:
        - The difference in words.
        - For C(port_shadowed) it holds the words of the refusal at publish time, C(host port is already bound by
          process PID (COMM) on this host), and C(found) holds that phrase.
      type: str
      sample: "endpoint netns:web1 on web: eth0 in the sandbox has MTU 1400, the network's is 1500"
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.cnm.network.plugins.module_utils.info import GATHER, run_info_module


def main() -> None:
    module = AnsibleModule(
        argument_spec=dict(
            network=dict(type="list", elements="str"),
            netns=dict(type="str"),
            netns_path=dict(type="path"),
            pid=dict(type="int"),
            container=dict(type="str"),
            container_runtime=dict(type="str", choices=["docker", "podman"]),
            gather=dict(type="list", elements="str", choices=list(GATHER), default=list(GATHER)),
            frr_vty_socket=dict(type="path"),
        ),
        mutually_exclusive=[("netns", "netns_path", "pid", "container")],
        supports_check_mode=True,
    )
    run_info_module(module)


if __name__ == "__main__":
    main()
