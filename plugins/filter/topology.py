# Copyright (c) 2026, cnm.network contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filters that draw what cnm_info reports on one or more hosts as a topology diagram: Graphviz DOT or Mermaid.

Both renderers draw one model, built from the reports: a cluster per host holding a cluster per network (its
devices, endpoints and published ports), the devices shared by networks (a macvlan or ipvlan parent) in the host,
one cluster per overlay (name and VNI) with an edge to each host's VTEP, and an edge per pair of peered VTEPs.
Whatever cnm_info reports as drift is drawn in red on the element it concerns; drift that concerns no drawn
element is listed in a red note of its host.

The documentation of each filter is in plugins/filter/<filter name>.yml.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping
from typing import Any, Dict, List, Optional, Tuple

from ansible.errors import AnsibleFilterError

Key = Tuple[str, ...]
RESULT_KEYS = ("networks", "endpoints", "ports", "peers", "drift")
RED = "#cc0000"
# Drift of a network's device: its object is "ROLE DEVICE". These are names of info.DRIFT_KINDS (a unit test keeps
# them so), copied because a controller plugin does not import the modules' core.
DEVICE_DRIFT = {
    "network_device_missing",
    "network_device_foreign",
    "network_device_down",
    "network_mtu",
    "network_addresses",
    "vxlan_settings",
}
CONTROL = re.compile(r"[\x00-\x1f\x7f]+")


def _fail(filter_name: str, message: str) -> AnsibleFilterError:
    return AnsibleFilterError("cnm.network.%s: %s" % (filter_name, message))


def _text(value: Any) -> str:
    """A value as one line of text: control characters (a newline in a name) become a space."""
    return CONTROL.sub(" ", "" if value is None else str(value))


def _address_key(text: Any) -> tuple:
    """Addresses in numeric order, anything else after them as text."""
    try:
        address = ipaddress.ip_address(str(text))
    except ValueError:
        return (1, 0, 0, str(text))
    return (0, address.version, int(address), "")


class _Element:
    """A node, a cluster or an edge of the model: label lines, the drift kinds pinned to it, and a flag for state
    that is wrong without a drift item of its own (a device reported absent)."""

    def __init__(self, key: Key, lines: List[str], kind: str) -> None:
        self.key = key
        self.lines = [_text(line) for line in lines if line not in (None, "")]
        self.kind = kind
        self.drift: List[str] = []
        self.bad = False

    @property
    def red(self) -> bool:
        return self.bad or bool(self.drift)

    def label(self) -> List[str]:
        kinds = sorted(set(self.drift))
        return self.lines + (["drift: " + ", ".join(kinds)] if kinds else [])


class _Cluster(_Element):
    def __init__(self, key: Key, lines: List[str], kind: str) -> None:
        super().__init__(key, lines, kind)
        self.children: List[Key] = []  # nodes and clusters, in drawing order
        self.devices: Dict[str, Key] = {}  # a network's device nodes by role (bridge, vxlan, shim, parent)


class _Edge(_Element):
    def __init__(self, key: Key, tail: Key, head: Key, lines: List[str], kind: str) -> None:
        super().__init__(key, lines, kind)
        self.tail = tail
        self.head = head


class _Model:
    """The diagram of the reports of several hosts, built in a fixed order so that equal input draws equal output."""

    def __init__(self, filter_name: str, reports: Any) -> None:
        self.filter_name = filter_name
        self.nodes: Dict[Key, _Element] = {}
        self.clusters: Dict[Key, _Cluster] = {}
        self.edges: Dict[Key, _Edge] = {}
        self.roots: List[Key] = []  # top-level nodes and clusters
        self.hosts = self._validate(reports)
        self.vteps: Dict[Tuple[str, str], str] = {}  # (overlay, VTEP address) -> host
        for host, report in self.hosts:
            for network in self._list(host, report, "networks"):
                if network.get("driver") == "overlay" and network.get("local_ip"):
                    self.vteps.setdefault((_text(network.get("name")), _text(network["local_ip"])), host)
        for host, report in self.hosts:
            self._host(host, report)
        self._overlays()
        peered: Dict[Key, List[dict]] = {}
        for host, report in self.hosts:
            self._peers(host, report, peered)
        self._peer_edges(peered)
        for host, report in self.hosts:
            self._drift(host, report)

    # ---- input ----
    def _validate(self, reports: Any) -> List[Tuple[str, Mapping]]:
        if not isinstance(reports, Mapping):
            raise _fail(
                self.filter_name,
                "input must be a dict of host name -> cnm_info result, not %s" % type(reports).__name__,
            )
        hosts = []
        for host in sorted(reports, key=str):
            report = reports[host]
            if not isinstance(report, Mapping):
                raise _fail(
                    self.filter_name, "the result of host %s is not a dict (%s)" % (host, type(report).__name__)
                )
            if report.get("failed"):
                raise _fail(self.filter_name, "cnm_info failed on host %s: %s" % (host, report.get("msg", "")))
            if not any(key in report for key in RESULT_KEYS):
                raise _fail(
                    self.filter_name,
                    "the result of host %s is not a cnm_info result (it has none of %s)"
                    % (host, ", ".join(RESULT_KEYS)),
                )
            hosts.append((str(host), report))
        return hosts

    def _list(self, host: str, report: Mapping, name: str) -> List[Mapping]:
        value = report.get(name) or []
        if not isinstance(value, list) or not all(isinstance(item, Mapping) for item in value):
            raise _fail(self.filter_name, "%s of host %s must be a list of dicts" % (name, host))
        return value

    # ---- building ----
    def _add_node(self, parent: Optional[Key], key: Key, lines: List[str], kind: str) -> _Element:
        if key in self.nodes:
            return self.nodes[key]
        node = _Element(key, lines, kind)
        self.nodes[key] = node
        (self.clusters[parent].children if parent is not None else self.roots).append(key)
        return node

    def _add_cluster(self, parent: Optional[Key], key: Key, lines: List[str], kind: str) -> _Cluster:
        if key in self.clusters:
            return self.clusters[key]
        cluster = _Cluster(key, lines, kind)
        self.clusters[key] = cluster
        (self.clusters[parent].children if parent is not None else self.roots).append(key)
        return cluster

    def _add_edge(self, key: Key, tail: Key, head: Key, lines: List[str], kind: str) -> _Edge:
        if key not in self.edges:
            self.edges[key] = _Edge(key, tail, head, lines, kind)
        return self.edges[key]

    def _host(self, host: str, report: Mapping) -> None:
        host_key = ("host", host)
        self._add_cluster(None, host_key, ["host " + host], "host")
        networks = sorted(self._list(host, report, "networks"), key=lambda item: str(item.get("name")))
        endpoints = sorted(
            self._list(host, report, "endpoints"),
            key=lambda item: (str(item.get("network")), str(item.get("sandbox"))),
        )
        ports = sorted(self._list(host, report, "ports"), key=lambda item: str(item.get("key")))
        for network in networks:
            self._network(host, network)
        for endpoint in endpoints:
            self._endpoint(host, endpoint)
        for port in ports:
            self._port(host, port)

    def _network_cluster(self, host: str, name: str, lines: Optional[List[str]] = None) -> Key:
        """The cluster of a network on a host; one the report does not list (endpoints or ports gathered without
        networks, or an endpoint whose network record is gone) gets a cluster with its name only."""
        key = ("network", host, name)
        self._add_cluster(("host", host), key, lines or [name], "network")
        return key

    def _network(self, host: str, network: Mapping) -> None:
        name = _text(network.get("name"))
        driver = network.get("driver")
        lines = ["%s (%s)" % (name, driver) if driver else name]
        lines.append(", ".join(str(network[key]) for key in ("subnet", "ipv6_subnet") if network.get(key)))
        if driver == "overlay":
            lines.append("VNI %s" % network.get("vni"))
        if network.get("parent"):
            mode = network.get("mode") if driver == "macvlan" else network.get("ipvlan_mode")
            lines.append("on %s%s" % (network["parent"], ", mode %s" % mode if mode else ""))
        if network.get("internal"):
            lines.append("internal")
        cluster = self._network_cluster(host, name, lines)
        devices = [item for item in network.get("devices") or [] if isinstance(item, Mapping)]
        masters: Dict[Key, Key] = {}
        for device in sorted(devices, key=lambda item: (item.get("role") != "bridge", str(item.get("name")))):
            role = device.get("role")
            key = ("device", host, _text(device.get("name")))
            # A parent carries every macvlan and ipvlan network on it: it is the host's, drawn once.
            parent = ("host", host) if role == "parent" else cluster
            lines = [device.get("name")]
            if role == "vxlan":
                settings = device.get("vxlan") or {}
                lines.append("vxlan, VTEP %s" % (settings.get("local") or network.get("local_ip")))
            elif role == "shim":
                lines.append("host access shim")
            elif role == "parent":
                lines.append("parent" + (" (%s)" % device["kind"] if device.get("kind") else ""))
            else:
                lines.append(_text(role))
            lines += [str(address) for address in device.get("addresses") or []]
            node = self._add_node(parent, key, lines, role or "device")
            if device.get("present") is False:
                node.lines.append("missing")
                node.bad = True
            self.clusters[cluster].devices.setdefault(_text(role), key)
            if device.get("master"):
                masters[key] = ("device", host, _text(device["master"]))
        # A device that is a port of a drawn bridge (an overlay's VXLAN device), and the shim on its parent.
        for key, master in sorted(masters.items()):
            if master in self.nodes:
                self._add_edge(("port-of", host, key[2]), master, key, [], "attach")
        roles = self.clusters[cluster].devices
        if "parent" in roles and "shim" in roles:
            self._add_edge(("shim", host, name), roles["parent"], roles["shim"], [driver], "attach")

    def _endpoint(self, host: str, endpoint: Mapping) -> None:
        network = _text(endpoint.get("network"))
        sandbox = _text(endpoint.get("sandbox"))
        cluster_key = self._network_cluster(host, network)
        cluster = self.clusters[cluster_key]
        ifname = endpoint.get("ifname") or ""
        addresses = [endpoint.get(key) for key in ("ipv4_address", "ipv6_address") if endpoint.get(key)]
        lines = [sandbox, ("%s %s" % (ifname, addresses[0])).strip() if addresses else ifname]
        lines += addresses[1:]
        lines.append(endpoint.get("mac_address"))
        value = sandbox.split(":", 1)[-1]
        names = [item for item in [endpoint.get("name")] if item and _text(item) != value]
        names += list(endpoint.get("aliases") or [])
        if names:
            lines.append("dns " + ", ".join(str(item) for item in names))
        key = ("endpoint", host, network, sandbox)
        node = self._add_node(cluster_key, key, lines, "endpoint")
        if endpoint.get("sandbox_exists") is False:
            node.lines.append("sandbox missing")
            node.bad = True
        link = endpoint.get("link")
        if link in ("macvlan", "ipvlan"):
            anchor = cluster.devices.get("parent")
            label = [link]
        else:
            anchor = cluster.devices.get("bridge")
            label = [endpoint.get("host_ifname")]
        if anchor is not None:
            self._add_edge(("attach", host, network, sandbox), anchor, key, label, "attach")

    def _port(self, host: str, port: Mapping) -> None:
        network = _text(port.get("network"))
        sandbox = _text(port.get("sandbox"))
        name = _text(port.get("key"))
        cluster = self._network_cluster(host, network)
        lines = [port.get("published") or name]
        if port.get("host_ip"):
            lines.append(name)
        key = ("port", host, name)
        node = self._add_node(cluster, key, lines, "port")
        if port.get("rules_present") is False:
            node.lines.append("rules missing")
            node.bad = True
        target = ("endpoint", host, network, sandbox)
        if target in self.nodes:
            self._add_edge(("forward", host, name), key, target, [], "forward")
        else:
            node.lines.append("to %s" % sandbox)

    def _anchor(self, host: str, network: str) -> Key:
        """The node of an overlay's VXLAN device on a host (or of the network, when its devices were not
        gathered)."""
        cluster = self.clusters.get(("network", host, network))
        device = cluster.devices.get("vxlan") if cluster is not None else None
        if device is not None:
            return device
        cluster_key = self._network_cluster(host, network)
        return self._add_node(cluster_key, ("vtep", host, network), [network, "vxlan"], "vxlan").key

    def _overlays(self) -> None:
        """One cluster per overlay (name and VNI) with an edge to each host's VTEP."""
        segments: Dict[Tuple[str, str], List[Tuple[str, Mapping]]] = {}
        for host, report in self.hosts:
            for network in self._list(host, report, "networks"):
                if network.get("driver") == "overlay":
                    segments.setdefault((_text(network.get("name")), _text(network.get("vni"))), []).append(
                        (host, network)
                    )
        for (name, vni), members in sorted(segments.items(), key=lambda item: (item[0][0], _address_key(item[0][1]))):
            cluster = ("overlay", name, vni)
            subnets = sorted({_text(network.get("subnet")) for _host, network in members if network.get("subnet")})
            self._add_cluster(None, cluster, ["overlay %s, VNI %s" % (name, vni)], "overlay")
            segment = ("segment", name, vni)
            ports = sorted({_text(network.get("port")) for _host, network in members if network.get("port")})
            lines = [name] + subnets + ["UDP port " + ", ".join(ports) if ports else ""]
            self._add_node(cluster, segment, lines, "segment")
            for host, network in members:
                self._add_edge(
                    ("member", name, vni, host),
                    segment,
                    self._anchor(host, name),
                    ["VTEP %s" % network.get("local_ip")] if network.get("local_ip") else [],
                    "member",
                )

    def _peers(self, host: str, report: Mapping, peered: Dict[Key, List[dict]]) -> None:
        """Each host's view of its peers, keyed by the (unordered) pair of VTEPs it concerns."""
        peers = sorted(
            self._list(host, report, "peers"),
            key=lambda item: (str(item.get("network")), _address_key(item.get("vtep"))),
        )
        for peer in peers:
            network = _text(peer.get("network"))
            vtep = _text(peer.get("vtep"))
            other = self.vteps.get((network, vtep))
            if other is not None and other != host:
                pair = sorted([host, other])
                key: Key = ("peer", network, pair[0], pair[1])
            else:
                key = ("peer", network, host, "vtep:" + vtep)
            peered.setdefault(key, []).append(dict(peer, host=host, other=other))

    def _peer_edges(self, peered: Dict[Key, List[dict]]) -> None:
        gathered = {host for host, report in self.hosts if "peers" in report}
        for key in sorted(peered, key=lambda item: tuple(str(part) for part in item)):
            views = peered[key]
            network, first = key[1], key[2]
            if key[3].startswith("vtep:"):
                vtep = key[3][len("vtep:") :]
                outside = ("outside", vtep)
                if outside not in self.nodes:
                    self._add_node(None, outside, ["VTEP " + vtep, "not in the diagram"], "outside")
                head = outside
                lines: List[str] = []
            else:
                head = self._anchor(key[3], network)
                lines = []
                # Each side lists the other, when both sides' peers were gathered.
                sides = {view["host"] for view in views}
                for side in sorted({first, key[3]} & gathered - sides):
                    lines.append("%s lacks the peer" % side)
            edge = self._add_edge(key, self._anchor(first, network), head, lines, "peer")
            for view in views:
                if view.get("recorded") is False:
                    edge.lines.append("%s: only in the FDB" % view["host"])
                if view.get("flood") is False:
                    edge.lines.append("%s: no flood entry" % view["host"])
            edge.bad = bool(edge.lines)

    # ---- drift ----
    def _peer_edge(self, host: str, network: str, vtep: Any) -> Optional[_Edge]:
        if not vtep:
            return None
        other = self.vteps.get((network, _text(vtep)))
        if other is not None and other != host:
            pair = sorted([host, other])
            return self.edges.get(("peer", network, pair[0], pair[1]))
        return self.edges.get(("peer", network, host, "vtep:" + _text(vtep)))

    def _peer_of_address(self, host: str, report: Mapping, network: str, value: Mapping) -> Optional[str]:
        """The VTEP whose endpoints hold the neighbour entry's address or MAC."""
        for peer in self._list(host, report, "peers"):
            if peer.get("network") != network:
                continue
            for endpoint in peer.get("endpoints") or []:
                if isinstance(endpoint, Mapping) and (
                    endpoint.get("ip") == value.get("ip") or endpoint.get("mac") == value.get("mac")
                ):
                    return str(peer.get("vtep"))
        return None

    def _pin(self, host: str, report: Mapping, item: Mapping) -> Optional[_Element]:
        """The drawn element a drift item concerns, or None (then it goes to the host's note)."""
        kind = str(item.get("kind"))
        network = _text(item.get("network")) if item.get("network") else None
        sandbox = _text(item.get("sandbox")) if item.get("sandbox") else None
        words = _text(item.get("object")).split(" ")
        if kind in DEVICE_DRIFT and len(words) == 2:
            node = self.nodes.get(("device", host, words[1]))
            if node is not None:
                return node
        if kind.startswith("port_") and words[0] == "port" and len(words) > 1:
            node = self.nodes.get(("port", host, " ".join(words[1:])))
            if node is not None:
                return node
        if (kind.startswith("endpoint_") or kind == "sandbox_default_route_missing") and network and sandbox:
            node = self.nodes.get(("endpoint", host, network, sandbox))
            if node is not None:
                return node
        if kind.startswith("peer_") and network:
            value = item.get("expected") or item.get("found")
            if isinstance(value, Mapping):
                vtep = value.get("vtep") or self._peer_of_address(host, report, network, value)
                edge = self._peer_edge(host, network, vtep)
                if edge is not None:
                    return edge
            cluster = self.clusters.get(("network", host, network))
            device = cluster.devices.get("vxlan") if cluster is not None else None
            if device is not None:
                return self.nodes[device]
        if kind == "unclaimed_device" and words[0] == "link" and len(words) > 1:
            found = item.get("found") if isinstance(item.get("found"), Mapping) else {}
            lines = [" ".join(words[1:]), "kind %s" % found.get("kind"), "alias %s" % found.get("alias")]
            return self._add_node(("host", host), ("unclaimed", host, " ".join(words[1:])), lines, "unclaimed")
        if kind in DEVICE_DRIFT or kind == "network_rules_missing" or (network and not sandbox):
            cluster = self.clusters.get(("network", host, network or ""))
            if cluster is not None:
                return cluster
        return None

    def _drift(self, host: str, report: Mapping) -> None:
        items = sorted(
            self._list(host, report, "drift"),
            key=lambda item: (str(item.get("kind")), str(item.get("object")), str(item.get("message"))),
        )
        unpinned = []
        for item in items:
            element = self._pin(host, report, item)
            if element is None:
                unpinned.append(item)
            else:
                element.drift.append(_text(item.get("kind")))
        if items:
            self.clusters[("host", host)].lines.append("drift: %d" % len(items))
        if unpinned:
            lines = ["drift"] + ["%s: %s" % (_text(item.get("kind")), _text(item.get("object"))) for item in unpinned]
            self._add_node(("host", host), ("drift", host), lines, "note").bad = True


# ---- Graphviz DOT ----
def _style(text: str) -> Dict[str, str]:
    """Attributes written as "name=value name=value" (values without spaces)."""
    return dict(pair.split("=", 1) for pair in text.split())


DOT_SHAPES = {
    "bridge": _style("shape=box style=filled fillcolor=#dde8f7"),
    "vxlan": _style("shape=box style=filled fillcolor=#e3f2de"),
    "shim": _style("shape=box style=filled fillcolor=#f4ecd8"),
    "parent": _style("shape=box style=filled fillcolor=#eeeeee"),
    "device": _style("shape=box style=filled fillcolor=#eeeeee"),
    "endpoint": _style("shape=box style=rounded"),
    "port": _style("shape=cds style=filled fillcolor=#fff4cc"),
    "segment": _style("shape=ellipse style=filled fillcolor=#e3f2de"),
    "outside": _style("shape=hexagon style=dashed"),
    "unclaimed": _style("shape=box style=dashed"),
    "note": _style("shape=note style=filled fillcolor=#fde8e8"),
}
DOT_EDGES = {
    "attach": _style("dir=none"),
    "forward": _style("style=bold color=#b8860b"),
    "member": _style("dir=none style=dotted"),
    "peer": _style("dir=none style=dashed color=#2e7d32 penwidth=1.5"),
}
DOT_CLUSTERS = {
    "host": _style("style=rounded color=#666666 fontsize=13"),
    "network": _style("style=rounded,filled fillcolor=#f7f9fc color=#9aa9bd"),
    "overlay": _style("style=rounded,filled fillcolor=#f3faf0 color=#7cb36b"),
}
DOT_RED = _style("color=%s fontcolor=%s penwidth=2" % (RED, RED))


def _dot_id(key: Key) -> str:
    """A quoted DOT ID: the key's parts joined by "/", each with "%", "/", backslash and quote percent-encoded (so two
    keys never give the same ID and no backslash can escape the closing quote)."""
    parts = []
    for part in key:
        text = _text(part)
        for char in "%/\\\"":
            text = text.replace(char, "%%%02X" % ord(char))
        parts.append(text)
    return '"%s"' % "/".join(parts)


def _dot_string(lines: List[str]) -> str:
    """A quoted DOT string: backslash and quote escaped, lines joined by \\n (a centred line break)."""
    return '"%s"' % "\\n".join(line.replace("\\", "\\\\").replace('"', '\\"') for line in lines)


def _dot_attributes(element: _Element, style: Dict[str, str]) -> str:
    attributes = dict(style, **(DOT_RED if element.red else {}))
    label = element.label()
    if label or not isinstance(element, _Edge):
        attributes = dict(label=label, **attributes)
    return ", ".join(
        "%s=%s" % (name, _dot_string(value if isinstance(value, list) else [value]))
        for name, value in attributes.items()
    )


def _dot(model: _Model, title: Optional[str]) -> str:
    out = ["digraph %s {" % _dot_string([title or "cnm.network"])]
    graph = 'rankdir=LR, fontname="Helvetica", fontsize=12, nodesep=0.3, ranksep=0.6, newrank=true'
    if title:
        graph += ", label=%s, labelloc=t" % _dot_string([title])
    out.append("  graph [%s];" % graph)
    out.append('  node [fontname="Helvetica", fontsize=10];')
    out.append('  edge [fontname="Helvetica", fontsize=9, color="#555555"];')

    def draw(key: Key, depth: int) -> None:
        pad = "  " * depth
        if key in model.clusters:
            cluster = model.clusters[key]
            out.append("%ssubgraph %s {" % (pad, _dot_id(("cluster",) + key)))
            out.append("%s  graph [%s];" % (pad, _dot_attributes(cluster, DOT_CLUSTERS[cluster.kind])))
            for child in cluster.children:
                draw(child, depth + 1)
            out.append("%s}" % pad)
            return
        node = model.nodes[key]
        out.append("%s%s [%s];" % (pad, _dot_id(key), _dot_attributes(node, DOT_SHAPES[node.kind])))

    for key in model.roots:
        draw(key, 1)
    for edge in model.edges.values():
        out.append(
            "  %s -> %s [%s];" % (_dot_id(edge.tail), _dot_id(edge.head), _dot_attributes(edge, DOT_EDGES[edge.kind]))
        )
    out.append("}")
    return "\n".join(out) + "\n"


def topology_dot(reports: Any, title: Optional[str] = None) -> str:
    """The topology of the hosts' cnm_info results as a Graphviz digraph."""
    return _dot(_Model("topology_dot", reports), _text(title) if title else None)


# ---- Mermaid ----
MERMAID_SHAPES = {"endpoint": ("(", ")"), "port": (">", "]"), "segment": ("([", "])"), "outside": ("{{", "}}")}
MERMAID_EDGES = {"attach": "---", "forward": "==>", "member": "-.-", "peer": "-.-"}
MERMAID_CLASSES = {
    "bridge": "fill:#dde8f7,stroke:#6d85a8",
    "vxlan": "fill:#e3f2de,stroke:#5f9a4f",
    "shim": "fill:#f4ecd8,stroke:#a89060",
    "device": "fill:#eeeeee,stroke:#888888",
    "port": "fill:#fff4cc,stroke:#b8860b",
    "segment": "fill:#e3f2de,stroke:#5f9a4f",
    "note": "fill:#fde8e8",
}
# Characters that would end a quoted Mermaid string or start an entity, markup or a Markdown string: written as
# Mermaid's numeric entity codes (#NN;).
MERMAID_ESCAPES = {char: "#%d;" % ord(char) for char in "#\"&<>`|"}


def _mermaid_string(lines: List[str]) -> str:
    return '"%s"' % "<br>".join("".join(MERMAID_ESCAPES.get(char, char) for char in line) for line in lines)


def _mermaid(model: _Model, title: Optional[str]) -> str:
    out = []
    if title:  # front matter; a title holding a colon or quote needs YAML's quoting
        out += ["---", "title: %s" % _yaml_quoted(title), "---"]
    out.append("flowchart LR")
    names: Dict[Key, str] = {}
    members: Dict[str, List[str]] = {}  # class name -> Mermaid names of its nodes (drift: of its subgraphs too)

    def draw(key: Key, depth: int) -> None:
        pad = "  " * depth
        if key in model.clusters:
            cluster = model.clusters[key]
            name = names[key] = "s%d" % len(names)
            out.append("%ssubgraph %s[%s]" % (pad, name, _mermaid_string(cluster.label())))
            for child in cluster.children:
                draw(child, depth + 1)
            out.append("%send" % pad)
            return
        node = model.nodes[key]
        name = names[key] = "n%d" % len(names)
        opening, closing = MERMAID_SHAPES.get(node.kind, ("[", "]"))
        out.append("%s%s%s%s%s" % (pad, name, opening, _mermaid_string(node.label()), closing))

    for key in model.roots:
        draw(key, 1)
    red_links = []
    for number, edge in enumerate(model.edges.values()):
        label = edge.label()
        arrow = MERMAID_EDGES[edge.kind] + ("|%s|" % _mermaid_string(label) if label else "")
        out.append("  %s %s %s" % (names[edge.tail], arrow, names[edge.head]))
        if edge.red:
            red_links.append(str(number))
    for key, name in names.items():
        element = model.clusters.get(key) or model.nodes[key]
        if key in model.nodes:
            kind = "device" if element.kind == "parent" else element.kind
            members.setdefault(kind if kind in MERMAID_CLASSES else "", []).append(name)
        if element.red:
            members.setdefault("drift", []).append(name)
    for kind in sorted(MERMAID_CLASSES):
        out.append("  classDef %s %s" % (kind, MERMAID_CLASSES[kind]))
    out.append("  classDef drift stroke:%s,stroke-width:2px,color:%s" % (RED, RED))
    for kind in sorted(set(MERMAID_CLASSES) & set(members)):
        out.append("  class %s %s" % (",".join(members[kind]), kind))
    for name in members.get("drift", []):
        if name.startswith("s"):  # a subgraph takes a style, not a class, in every Mermaid version
            out.append("  style %s stroke:%s,stroke-width:2px,color:%s" % (name, RED, RED))
    drifted = [name for name in members.get("drift", []) if name.startswith("n")]
    if drifted:
        out.append("  class %s drift" % ",".join(drifted))
    if red_links:
        out.append("  linkStyle %s stroke:%s,stroke-width:2px,color:%s" % (",".join(red_links), RED, RED))
    return "\n".join(out) + "\n"


def _yaml_quoted(text: str) -> str:
    return '"%s"' % text.replace("\\", "\\\\").replace('"', '\\"')


def topology_mermaid(reports: Any, title: Optional[str] = None) -> str:
    """The topology of the hosts' cnm_info results as a Mermaid flowchart."""
    return _mermaid(_Model("topology_mermaid", reports), _text(title) if title else None)


class FilterModule:
    """cnm.network's topology filters."""

    def filters(self) -> Dict[str, Any]:
        return {"topology_dot": topology_dot, "topology_mermaid": topology_mermaid}
