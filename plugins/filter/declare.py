# Copyright (c) 2026, cnm.network contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filters of the declarative role (cnm.network.cnm_networks): the module arguments a host's variables ask for,
and what to remove so that only those exist.

The documentation of each filter is in plugins/filter/<filter name>.yml.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Dict, List

from ansible.errors import AnsibleFilterError

from ansible_collections.cnm.network.plugins.module_utils.errors import CnmError
from ansible_collections.cnm.network.plugins.module_utils.model import NETWORKS, SANDBOX_OPTIONS, parse_sandbox
from ansible_collections.cnm.network.plugins.module_utils.sandbox import SandboxRef

DRIVERS = tuple(NETWORKS)  # the role has a task per driver, named after it (roles/cnm_networks/tasks/main.yml)
# Keys of a network item that are not options of its module.
NETWORK_ONLY_KEYS = ("driver",)


def _fail(filter_name: str, message: str) -> AnsibleFilterError:
    return AnsibleFilterError("cnm.network.%s: %s" % (filter_name, message))


def _items(filter_name: str, value: Any, what: str) -> List[dict]:
    if value is None:
        return []
    if isinstance(value, (str, bytes, Mapping)) or not hasattr(value, "__iter__"):
        raise _fail(filter_name, "%s must be a list of dicts, not %s" % (what, type(value).__name__))
    items = list(value)
    for number, item in enumerate(items):
        if not isinstance(item, Mapping):
            raise _fail(filter_name, "%s[%d] must be a dict, not %s" % (what, number, type(item).__name__))
    return items


def sandbox_key(item: Mapping) -> str:
    """The sandbox of an endpoint item as the store keys it (``netns:NAME``, ``container:docker/NAME``...), checked
    by the modules' own parser."""
    return parse_sandbox(dict(item))[1].key


def declared(networks: Any, endpoints: Any = None) -> Dict[str, list]:
    """Module arguments, grouped by driver (``bridge``, ``overlay``...: one dict per network), ``endpoints`` (the
    items of one cnm_endpoint task) and ``ports`` (the items of one cnm_port_publish task: the endpoints that list
    ports)."""
    name = "declared"
    result: Dict[str, list] = {driver: [] for driver in DRIVERS}
    seen = {}
    for number, item in enumerate(_items(name, networks, "networks")):
        if not item.get("name"):
            raise _fail(name, "networks[%d] has no name" % number)
        driver = item.get("driver") or "bridge"
        if driver not in DRIVERS:
            raise _fail(
                name,
                "networks[%d] (%s): driver %r is not one of %s" % (number, item["name"], driver, ", ".join(DRIVERS)),
            )
        if item["name"] in seen:
            raise _fail(
                name,
                "network %s is listed twice (networks[%d] and networks[%d])"
                % (item["name"], seen[item["name"]], number),
            )
        seen[item["name"]] = number
        result[driver].append(
            {key: value for key, value in item.items() if key not in NETWORK_ONLY_KEYS and value is not None}
        )
    result["endpoints"], result["ports"] = [], []
    keys = set()
    for number, item in enumerate(_items(name, endpoints, "endpoints")):
        if not item.get("network"):
            raise _fail(name, "endpoints[%d] has no network" % number)
        try:
            key = (item["network"], sandbox_key(item))
        except CnmError as exc:
            raise _fail(name, "endpoints[%d]: %s" % (number, exc)) from exc
        if key in keys:
            raise _fail(name, "endpoints[%d]: %s is listed twice on network %s" % (number, key[1], key[0]))
        keys.add(key)
        result["endpoints"].append({k: v for k, v in item.items() if k != "ports" and v is not None})
        if item.get("ports"):
            sandbox = {k: item[k] for k in SANDBOX_OPTIONS + ("container_runtime",) if item.get(k) not in (None, "")}
            result["ports"].append(dict(sandbox, network=item["network"], ports=list(item["ports"])))
    return result


def prune_plan(info: Any, networks: Any, endpoints: Any = None) -> Dict[str, list]:
    """From cnm_info's result: the endpoints (``endpoints``: cnm_endpoint items with state absent) and the networks
    (by driver: names) that exist but are not declared. A network that stays keeps its
    endpoints only if they are declared; a network that goes takes its endpoints with it (force)."""
    name = "prune_plan"
    if not isinstance(info, Mapping):
        raise _fail(
            name, "the input must be the registered result of cnm.network.cnm_info, not %s" % type(info).__name__
        )
    wanted = declared(networks, endpoints)
    wanted_networks = {item["name"] for driver in DRIVERS for item in wanted[driver]}
    wanted_endpoints = {(item["network"], sandbox_key(item)) for item in wanted["endpoints"]}
    plan: Dict[str, list] = {driver: [] for driver in DRIVERS}
    plan["endpoints"], plan["ports"] = [], []
    for network in info.get("networks") or []:
        if network["name"] not in wanted_networks:
            plan.setdefault(network.get("driver") or "bridge", []).append(network["name"])
    for endpoint in info.get("endpoints") or []:
        if (
            endpoint["network"] in wanted_networks
            and (endpoint["network"], endpoint["sandbox"]) not in wanted_endpoints
        ):
            plan["endpoints"].append(
                dict(_sandbox_item(endpoint["sandbox"]), network=endpoint["network"], state="absent")
            )
    # Declared endpoints that no longer list any port: all their ports go (those that list some are made exact
    # by cnm_port_publish's exclusive option).
    with_ports = {(item["network"], sandbox_key(item)) for item in wanted["ports"]}
    unpublish = sorted(
        {
            (port["network"], port["sandbox"])
            for port in info.get("ports") or []
            if (port["network"], port["sandbox"]) in wanted_endpoints
            and (port["network"], port["sandbox"]) not in with_ports
        }
    )
    plan["ports"] = [dict(_sandbox_item(sandbox), network=network, state="absent") for network, sandbox in unpublish]
    for driver in DRIVERS:
        plan[driver].sort()
    plan["endpoints"].sort(key=lambda item: (item["network"], sorted(item.items())))
    return plan


def _sandbox_item(key: str) -> dict:
    """The module options that name the sandbox of a store key (the inverse of sandbox_key)."""
    ref = SandboxRef.from_key(key)
    if ref.kind == "container":
        return {"container": ref.value, "container_runtime": ref.runtime}
    return {ref.kind: int(ref.value) if ref.kind == "pid" else ref.value}


class FilterModule:
    def filters(self) -> Dict[str, Any]:
        return {"declared": declared, "prune_plan": prune_plan}
