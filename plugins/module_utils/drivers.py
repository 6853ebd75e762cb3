# Copyright: cnm.network contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The network drivers' planners, for callers that hold only a store record.

A driver is its network class in model.py (NETWORKS: the record's shape, its devices, its endpoints' link kind in
attach.LINKS, what it refuses) and its planner file (bridge.py, overlay.py, macvlan.py). Modules call their own
driver's planner; what plans a network from its record alone (restore.py, at boot) asks this table.
"""

from __future__ import annotations

from ansible_collections.cnm.network.plugins.module_utils.bridge import plan_bridge_present
from ansible_collections.cnm.network.plugins.module_utils.host import Host
from ansible_collections.cnm.network.plugins.module_utils.ipvlan import plan_ipvlan_present
from ansible_collections.cnm.network.plugins.module_utils.macvlan import plan_macvlan_present
from ansible_collections.cnm.network.plugins.module_utils.model import BridgeNetwork, IpvlanNetwork, MacvlanNetwork
from ansible_collections.cnm.network.plugins.module_utils.overlay import plan_overlay_present
from ansible_collections.cnm.network.plugins.module_utils.records import (
    BridgeRecord,
    IpvlanRecord,
    MacvlanRecord,
    OverlayRecord,
)


def _restore_bridge(host: Host, name: str, record: BridgeRecord) -> None:
    plan_bridge_present(host, BridgeNetwork.from_record(name, record), allow_host_route_overlap=True)


def _restore_overlay(host: Host, name: str, record: OverlayRecord) -> None:
    plan_overlay_present(host, dict(record.declared(), name=name, allow_host_route_overlap=True))


def _restore_macvlan(host: Host, name: str, record: MacvlanRecord) -> None:
    plan_macvlan_present(host, MacvlanNetwork.from_params(dict(record.declared(), name=name)))


def _restore_ipvlan(host: Host, name: str, record: IpvlanRecord) -> None:
    plan_ipvlan_present(host, IpvlanNetwork.from_params(dict(record.declared(), name=name)))


# Plan a network of each driver present again from its store record (after a reboot).
RESTORE = {
    "bridge": _restore_bridge,
    "overlay": _restore_overlay,
    "macvlan": _restore_macvlan,
    "ipvlan": _restore_ipvlan,
}
