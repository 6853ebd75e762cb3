# Copyright: cnm.network contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""What a sandbox is (its identity) and what it gets as a whole, decided once all endpoints of a run are planned (pure
logic, no kernel: where a sandbox's namespace lies and whether it exists is netns.py's).

Default gateway, as Docker 28's libnetwork (``Sandbox.getGatewayEndpoint`` over endpoints kept sorted
by ``Endpoint.Less``): the endpoints are ranked by
  1. ``gw_priority``, highest first (Docker's ``--gw-priority``, default 0, any int64);
  2. a non-internal network before an internal one;
  3. dual-stack (an IPv4 and an IPv6 gateway) before one gateway before none;
  4. the network name, lexicographically (``bar`` before ``foo``);
and for each IP version separately the first ranked endpoint that has a gateway of that version holds the
sandbox's default route. So the choice is made again whenever an endpoint joins or leaves: detaching the
holder moves the default route to the next one; attaching a better-ranked endpoint takes it over.

Sandbox sysctls, as Docker sets them in a container's namespace: ``net.ipv4.ip_unprivileged_port_start=0``
and ``net.ipv4.ping_group_range=0 2147483647`` (daemon/oci_linux.go, for every container with a namespace
of its own), and IPv6 off on ``all``, ``default`` and ``lo`` while no endpoint of the sandbox has IPv6
(libnetwork's osl up to Docker 25: ``all`` off when the namespace is made, ``lo`` on exactly while an
interface has an IPv6 address). Each is left alone when an endpoint of the sandbox sets it in ``sysctls``.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Dict, Iterable, List, Optional, Set, Tuple

from ansible_collections.cnm.network.plugins.module_utils.errors import option_error
from ansible_collections.cnm.network.plugins.module_utils.records import IpvlanRecord, NetworkRecord

if TYPE_CHECKING:  # records.py imports model.py, which imports this file
    from ansible_collections.cnm.network.plugins.module_utils.records import EndpointRecord

CONTAINER_RUNTIMES = ("docker", "podman")
HOST = "host"  # the host's own namespace where a sandbox key is expected (keys are "kind:value": no clash)


@dataclass(frozen=True)
class SandboxRef:
    """A sandbox as named: a named namespace, a namespace file path, a process, or a container.

    A container's key is ``container:RUNTIME/NAME`` (stable across restarts: the endpoint keeps its
    lease and host veth name)."""

    kind: str  # "netns", "netns_path", "pid" or "container"
    value: str
    runtime: str = ""  # "docker" or "podman" for a container

    @property
    def key(self) -> str:
        if self.kind == "container":
            return "container:%s/%s" % (self.runtime, self.value)
        return "%s:%s" % (self.kind, self.value)

    @classmethod
    def from_key(cls, key: str) -> SandboxRef:
        kind, value = key.split(":", 1)
        if kind == "container":
            runtime, name = value.split("/", 1)
            return cls(kind, name, runtime)
        return cls(kind, value)


GW_PRIORITY_MIN, GW_PRIORITY_MAX = -(2**63), 2**63 - 1  # Docker's GwPriority is a Go int (int64 in the API)

DOCKER_SYSCTLS: Tuple[Tuple[str, str], ...] = (
    ("net.ipv4.ip_unprivileged_port_start", "0"),
    ("net.ipv4.ping_group_range", "0 2147483647"),
)
IPV6_KNOBS = ("net.ipv6.conf.all.disable_ipv6", "net.ipv6.conf.default.disable_ipv6", "net.ipv6.conf.lo.disable_ipv6")


def parse_gw_priority(option: str, value) -> int:
    """An int in Docker's range; a bool or a non-integral value is refused naming the option."""
    if value is None:
        return 0
    if isinstance(value, bool):
        raise option_error(option, value, "is not an integer (Docker's --gw-priority)")
    if isinstance(value, int):
        number = value
    else:
        text = str(value).strip()
        try:
            number = int(text, 10)
        except ValueError:
            raise option_error(option, value, "is not an integer (Docker's --gw-priority)") from None
    if not GW_PRIORITY_MIN <= number <= GW_PRIORITY_MAX:
        raise option_error(
            option,
            value,
            "is out of range (%d to %d, a 64-bit integer as in Docker)" % (GW_PRIORITY_MIN, GW_PRIORITY_MAX),
        )
    return number


@dataclass(frozen=True)
class Candidate:
    """One endpoint of a sandbox as the gateway choice sees it: ``gateways`` maps IP version -> gateway address."""

    name: str  # the endpoint's interface in the sandbox
    network: str
    priority: int = 0
    internal: bool = False
    gateways: Dict[int, str] = field(default_factory=dict)


def rank(candidate: Candidate) -> tuple:
    """Docker's Endpoint.Less as a sort key: smaller is a better gateway."""
    return (-candidate.priority, candidate.internal, -len(candidate.gateways), candidate.network)


def choose_gateways(candidates: Iterable[Candidate]) -> Dict[int, Optional[Candidate]]:
    """The endpoint holding each IP version's default route (None when no endpoint has that version's gateway)."""
    ordered = sorted(candidates, key=rank)
    return {version: next((c for c in ordered if version in c.gateways), None) for version in (4, 6)}


def gateway_candidates(
    records: Iterable[EndpointRecord], networks: Dict[str, NetworkRecord]
) -> Tuple[List[Candidate], Set[int]]:
    """From the store: the endpoints of one sandbox that may hold its default routes, and the IP versions whose
    default route an endpoint asks for itself in ``routes`` (the gateway choice leaves those versions alone)."""
    candidates, explicit = [], set()
    for record in records:
        network = networks.get(record.network)
        explicit.update(
            ipaddress.ip_network(item["dst"]).version
            for item in record.routes
            if ipaddress.ip_network(item["dst"]).prefixlen == 0
        )
        if network is None or not record.default_route or network.internal:
            continue
        gateways = {}  # version -> the gateway's address, or None: through the interface (ipvlan l3, l3s)
        on_link = isinstance(network, IpvlanRecord) and network.default_on_link
        if record.ipv4_address and (on_link or network.gateway):
            gateways[4] = None if on_link else network.gateway
        if record.ipv6_address and (on_link or network.ipv6_gateway):
            gateways[6] = None if on_link else network.ipv6_gateway
        candidates.append(
            Candidate(
                record.ifname,
                record.network,
                record.gw_priority,
                network.internal,
                gateways,
            )
        )
    return candidates, explicit


def sandbox_sysctls(has_ipv6: bool, overridden: Iterable[str], kernel_ipv6: bool = True) -> List[Tuple[str, str]]:
    """The namespace-wide sysctls the sandbox should have, in the order to write them (``all`` before the rest:
    writing ``all`` also sets ``default`` and every existing interface)."""
    wanted = list(DOCKER_SYSCTLS)
    if kernel_ipv6:
        if has_ipv6:
            wanted.append(("net.ipv6.conf.lo.disable_ipv6", "0"))  # ::1 while an endpoint has IPv6
        else:
            wanted.extend((name, "1") for name in IPV6_KNOBS)
    skip = set(overridden)
    return [(name, value) for name, value in wanted if name not in skip]


def same_value(a: Optional[str], b: Optional[str]) -> bool:
    """Sysctl values compare by words: the kernel prints ping_group_range with a tab."""
    if a is None or b is None:
        return a is b
    return a.split() == b.split()
