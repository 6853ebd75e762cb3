# Copyright: cnm.network contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""What the planners of every driver share about a network: its endpoints re-planned or detached with it, and
the checks of its subnets against the other networks and its endpoints."""

from __future__ import annotations

import ipaddress

from ansible_collections.cnm.network.plugins.module_utils.endpoint import EndpointPlanner
from ansible_collections.cnm.network.plugins.module_utils.errors import option_error
from ansible_collections.cnm.network.plugins.module_utils.host import Host
from ansible_collections.cnm.network.plugins.module_utils.model import EndpointSpec
from ansible_collections.cnm.network.plugins.module_utils.plan import Op
from ansible_collections.cnm.network.plugins.module_utils.records import NetworkRecord
from ansible_collections.cnm.network.plugins.module_utils.sandbox import HOST, SandboxRef


def plan_device_delete(host: Host, target: str, what: str, before: dict, device: str, forgets: tuple = ()) -> None:
    """The change that deletes a network's own host device (what is on it goes with it); ``forgets``: the store
    records this removal is part of (see Plan.forgotten)."""
    host.plan.add(target, what, before, None, Op(HOST, "delete_link", (device,)), forgets=forgets)


def detach_all(host: Host, name: str, force: bool) -> dict:
    """Plan the detach of every endpoint of a network that goes; refused (naming them) unless ``force``."""
    attached = host.endpoints_of(name)
    if attached and not force:
        sandboxes = ", ".join(sorted(e.sandbox for e in attached.values()))
        raise option_error(
            "state",
            "absent",
            "refused: network %s has %d endpoint(s) attached (%s); detach them or set force: true"
            % (name, len(attached), sandboxes),
        )
    planner = EndpointPlanner(host)
    for endpoint in attached.values():
        planner.plan(EndpointSpec(network=name, sandbox=SandboxRef.from_key(endpoint.sandbox), state="absent"))
    planner.finish()
    return attached


def follow_endpoints(host: Host, record, new_record: NetworkRecord, attached: dict, shim_routes: bool = True) -> None:
    """Re-plan the attached endpoints when what they take from their network (gateway, MTU, subnets...) changed."""
    if record is None or not attached or endpoint_facing(record) == endpoint_facing(new_record):
        return
    planner = EndpointPlanner(host)
    planner.shim_routes = shim_routes
    if getattr(record, "control_plane", None) == "evpn" != getattr(new_record, "control_plane", None):
        planner.evpn_left.update(endpoint.network for endpoint in attached.values())
    for endpoint in attached.values():
        planner.plan(EndpointSpec.from_record(endpoint))
    planner.finish()


def endpoint_facing(record: NetworkRecord) -> tuple:
    return (
        record.gateway,
        record.mtu,
        record.ipv6_subnet,
        record.ipv6_gateway,
        record.subnet,
        record.internal,
        record.icc,
        getattr(record, "control_plane", None),  # an overlay's endpoints gain or lose their EVPN entries
    )


def check_overlaps(host: Host, name: str, subnet, ipv6_subnet) -> None:
    """A network's subnets may not overlap another cnm network's on this host (any driver)."""
    for other_name, other in host.state["networks"].items():
        if other_name == name:
            continue
        for option, mine, theirs in (
            ("subnet", subnet, other.subnet),
            ("ipv6_subnet", ipv6_subnet, other.ipv6_subnet),
        ):
            if mine is not None and theirs and mine.overlaps(ipaddress.ip_network(theirs)):
                raise option_error(option, mine, "overlaps network %s (%s)" % (other_name, theirs))


def check_subnet_change(network, attached: dict) -> None:
    """A changed subnet must keep every attached endpoint's address inside it (and off the gateway)."""
    for endpoint in attached.values():
        address = ipaddress.ip_address(endpoint.ipv4_address) if endpoint.ipv4_address else None
        if address is not None and (
            network.subnet is None or address not in network.subnet or address == network.gateway
        ):
            raise option_error(
                "subnet",
                network.subnet,
                "leaves endpoint %s (%s) outside; detach it first" % (endpoint.sandbox, address),
            )
        if endpoint.ipv6_address and (
            network.ipv6_subnet is None or ipaddress.ip_address(endpoint.ipv6_address) not in network.ipv6_subnet
        ):
            raise option_error(
                "ipv6_subnet",
                network.ipv6_subnet,
                "leaves endpoint %s (%s) outside; detach it first" % (endpoint.sandbox, endpoint.ipv6_address),
            )
