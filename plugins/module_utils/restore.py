# Copyright: cnm.network contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Restore at boot: the kernel brought back to the store's persistent copy, with no play run.

``cnm-network-restore`` (the cnm_prepare role installs it with its systemd unit) calls ``restore``.
A reboot empties /run, so the run loads the copy under /var/lib (see store.py) and reconciles
in two module-like runs, each one plan executed with its undo, as a module run would:

1. the named namespaces of endpoints (they live in /run/netns) and the networks;
2. the endpoints, of named namespaces and of containers running now, with their recorded
   addresses, MACs and interface names; the published ports follow, as the firewall is
   rendered from the store in every run.

Not restored at boot, each with the reason printed: encrypted overlays (their keys are never
written to disk: the next play run, which has them, brings the overlay and its endpoints back;
their clear VXLAN stays dropped meanwhile) and endpoints of containers not running yet (the next
module run on their network reclaims their leases, as for any stopped container).
A second run of the program, or a play run after it, changes nothing.
"""

from __future__ import annotations

import ipaddress

from ansible_collections.cnm.network.plugins.module_utils import netns
from ansible_collections.cnm.network.plugins.module_utils.bridge import plan_bridge_present
from ansible_collections.cnm.network.plugins.module_utils.endpoint import EndpointPlanner
from ansible_collections.cnm.network.plugins.module_utils.host import Host
from ansible_collections.cnm.network.plugins.module_utils.macvlan import plan_macvlan_present
from ansible_collections.cnm.network.plugins.module_utils.model import (
    BridgeNetwork,
    EndpointSpec,
    MacvlanNetwork,
    parse_routes,
    parse_sysctls,
)
from ansible_collections.cnm.network.plugins.module_utils.overlay import plan_overlay_present


def restore(runner) -> dict:
    """Both runs; the report: the changes made, what was skipped and why, and the warnings.

    ``runner`` stands in for the AnsibleModule of a module run: ``check_mode`` (false) and ``run_command``."""
    report: dict = {"changes": [], "skipped": [], "warnings": []}
    with Host.open(runner) as host:
        if host.store.loaded_from is None:
            return report  # nothing was ever declared on this host
        _plan_namespaces(host)
        for name, record in sorted(host.state["networks"].items()):
            if record["driver"] == "overlay" and record.get("encrypted"):
                report["skipped"].append("network %s: encrypted overlay, its keys come with the next play run" % name)
                continue
            _plan_network(host, name, record)
        _finish(host, report)
    with Host.open(runner) as host:
        skipped = set(name for name, record in host.state["networks"].items()
                      if record["driver"] == "overlay" and record.get("encrypted"))
        records = [record for _key, record in sorted(host.state["endpoints"].items())]
        netns.prefetch_containers([], [record["sandbox"] for record in records])
        planner = EndpointPlanner(host)
        for record in records:
            ref = netns.SandboxRef.from_key(record["sandbox"])
            if record["network"] in skipped:
                report["skipped"].append("endpoint %s on %s: its network is not restored" % (ref.key, record["network"]))
            elif not ref.exists():
                report["skipped"].append("endpoint %s on %s: the container is not running; the next run on its "
                                         "network attaches it again or reclaims its lease" % (ref.key, record["network"]))
            else:
                planner.plan(endpoint_spec(record))
        planner.finish()
        _finish(host, report)
        if host.store.loaded_from != host.store.path:
            host.store.save(host.state)  # /run holds the store again, as after any module run
    return report


def endpoint_spec(record: dict) -> EndpointSpec:
    """The endpoint as a task would ask for it: what was given explicitly is given again, the rest is kept from
    the record by the planner (leased addresses, derived MACs, chosen interface names)."""
    return EndpointSpec(
        network=record["network"],
        sandbox=netns.SandboxRef.from_key(record["sandbox"]),
        ifname=record["ifname"],
        ipv4_address=_address(record, "ipv4"),
        ipv6_address=_address(record, "ipv6"),
        mac_address=record.get("mac_address") if record.get("static_mac") else None,
        default_route=record.get("default_route", True),
        routes=parse_routes("routes", record.get("routes")),
        sysctls=parse_sysctls("sysctls", record.get("sysctls")),
        gw_priority=record.get("gw_priority", 0),
    )


def _address(record: dict, family: str):
    value = record.get(family + "_address")
    return ipaddress.ip_address(value) if value and record.get("static_" + family) else None


def _plan_namespaces(host: Host) -> None:
    """Named namespaces of endpoints live in /run/netns and are gone after a reboot: they are made again first,
    and count as held while the networks are planned (else their leases would be reclaimed)."""
    for name in sorted(set(record["sandbox"] for record in host.state["endpoints"].values())):
        ref = netns.SandboxRef.from_key(name)
        if ref.kind != "netns" or ref.exists():
            continue
        host.new_sandboxes.add(ref.key)
        host.plan.add("netns %s" % ref.value, "create network namespace %s" % ref.value, None, {"exists": True},
                      lambda r=ref: netns.create_named(r.value), lambda r=ref: netns.delete_named(r.value))


def _plan_network(host: Host, name: str, record: dict) -> None:
    if record["driver"] == "macvlan":
        # as declared: an MTU left out follows the parent's, which may differ after the reboot
        mtu = record["mtu"] if record.get("mtu_set", True) else None
        plan_macvlan_present(host, MacvlanNetwork.from_params(dict(record, name=name, mtu=mtu)))
    elif record["driver"] == "overlay":
        plan_overlay_present(host, dict(record, name=name, allow_host_route_overlap=True))
    else:
        plan_bridge_present(host, BridgeNetwork.from_record(name, record), allow_host_route_overlap=True)


def _finish(host: Host, report: dict) -> None:
    result = host.execute(check=False)
    report["changes"].extend(result["changes"])
    report["warnings"].extend(host.warnings)
    host.warnings = []
