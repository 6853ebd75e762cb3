# Copyright: cnm.network contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Restore at boot: the kernel brought back to the store's persistent copy, with no play run.

``cnm-network-restore`` (the cnm_prepare role installs it with its systemd unit) calls ``restore``.
A reboot empties /run, so the run loads the copy under /var/lib (see store.py) and reconciles
in module-like runs, each one plan executed with its undo, as a module run would:

1. the named namespaces of endpoints (they live in /run/netns);
2. each network, in a run of its own;
3. the endpoints of the networks restored, of named namespaces and of containers running now,
   with their recorded addresses, MACs and interface names; the published ports follow, as
   the firewall is rendered from the store in every run;
4. the resolver of the networks with ``dns: true`` (dns.py), last and in a run of its own: a resolver that
   cannot start costs the names, never a network.

Not restored at boot, each with the reason printed: encrypted overlays (their keys are never
written to disk: the next play run, which has them, brings the overlay and its endpoints back;
their clear VXLAN stays dropped meanwhile) and endpoints of containers not running yet (the next
module run on their network reclaims their leases, as for any stopped container).
A second run of the program, or a play run after it, changes nothing.
"""

from __future__ import annotations

from ansible_collections.cnm.network.plugins.module_utils import netns
from ansible_collections.cnm.network.plugins.module_utils.drivers import RESTORE
from ansible_collections.cnm.network.plugins.module_utils.endpoint import EndpointPlanner, plan_create_netns
from ansible_collections.cnm.network.plugins.module_utils.errors import CnmError
from ansible_collections.cnm.network.plugins.module_utils.host import Host
from ansible_collections.cnm.network.plugins.module_utils.model import EndpointSpec
from ansible_collections.cnm.network.plugins.module_utils.records import OverlayRecord
from ansible_collections.cnm.network.plugins.module_utils.sandbox import SandboxRef


def restore(runner) -> dict:
    """The runs; the report: the changes made, what was skipped or failed and why, and the warnings.

    ``runner`` stands in for the AnsibleModule of a module run: ``check_mode`` (false) and ``run_command``.
    Each network is restored in a run of its own, so one that cannot come back (its parent NIC is gone) keeps
    none of the others down; the endpoints of the networks restored follow in one run, as a sandbox's default
    route is chosen among all its endpoints."""
    report: dict = {"changes": [], "skipped": [], "failed": [], "warnings": []}
    with Host.open(runner) as host:
        if host.store.loaded_from is None:
            return report  # nothing was ever declared on this host
        networks = dict(host.state["networks"])
        _plan_namespaces(host)
        _finish(host, report)
    restored = []
    for name, record in sorted(networks.items()):
        if isinstance(record, OverlayRecord) and record.encrypted:
            report["skipped"].append("network %s: an encrypted overlay, its keys come with the next play run" % name)
            continue
        try:
            with Host.open(runner) as host:
                RESTORE[record.driver](host, name, record)
                _finish(host, report)
            restored.append(name)
        except CnmError as exc:
            report["failed"].append("network %s: %s" % (name, exc))
    try:
        with Host.open(runner) as host:
            _restore_endpoints(host, restored, report)
            _finish(host, report)
            if host.store.loaded_from != host.store.path:
                host.store.save(host.state)  # /run holds the store again, as after any module run
    except CnmError as exc:
        report["failed"].append("endpoints: %s" % exc)
    try:  # names last, in a run of their own: a resolver that cannot start costs the names only
        with Host.open(runner) as host:
            _finish(host, report, resolver=True)
    except CnmError as exc:
        report["failed"].append("resolver: %s" % exc)
    return report


def _restore_endpoints(host: Host, restored: list, report: dict) -> None:
    """Plan the endpoints of the networks restored whose sandboxes exist; the others stay in the store, set aside
    while planning so that a sandbox's default route is chosen among interfaces that exist."""
    endpoints = host.state["endpoints"]
    aside = {key: record for key, record in endpoints.items() if record.network not in restored}
    for key, record in sorted(aside.items()):
        del endpoints[key]
        report["skipped"].append("endpoint %s on %s: its network is not restored" % (record.sandbox, record.network))
    records = [record for _key, record in sorted(endpoints.items())]
    netns.prefetch_containers([], [record.sandbox for record in records])
    planner = EndpointPlanner(host)
    for record in records:
        if host.kernel.sandbox_exists(SandboxRef.from_key(record.sandbox)):
            planner.plan(EndpointSpec.from_record(record))
        else:
            report["skipped"].append(
                "endpoint %s on %s: the container is not running; the next run on its network "
                "attaches it again or reclaims its lease" % (record.sandbox, record.network)
            )
    planner.finish()
    endpoints.update(aside)


def _plan_namespaces(host: Host) -> None:
    """Named namespaces of endpoints live in /run/netns and are gone after a reboot: they are made again first, in
    a run of their own, so that the network runs find them (else their leases would be reclaimed as vanished)."""
    for name in sorted(set(record.sandbox for record in host.state["endpoints"].values())):
        ref = SandboxRef.from_key(name)
        if ref.kind != "netns" or host.kernel.sandbox_exists(ref):
            continue
        plan_create_netns(host, ref)


def _finish(host: Host, report: dict, resolver: bool = False) -> None:
    host.resolver_follows = resolver
    result = host.execute(check=False)
    report["changes"].extend(result["changes"])
    report["warnings"].extend(host.warnings)
    host.warnings = []
