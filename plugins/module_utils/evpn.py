# Copyright: cnm.network contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""What FRR says about the EVPN overlays of a host (control_plane: evpn), read with one ``vtysh`` run, and where the
kernel disagrees with it: cnm_info's ``evpn`` report and its ``evpn_*`` drift.

FRR's bgpd holds the BGP sessions, zebra the remote VTEPs and MACs of each VNI it learnt over them, and zebra writes
those into the kernel: a flood entry (00:00:00:00:00:00 dst VTEP) per remote VTEP and an extern_learn entry per remote
MAC on the VXLAN device. The module writes none of them on an EVPN overlay, so every entry towards a VTEP there is
zebra's: one FRR does not know is a ghost (a zebra killed before it could remove it), one FRR knows and the kernel
lacks was never programmed (or was removed by hand)."""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional, Tuple

from ansible_collections.cnm.network.plugins.module_utils.model import FLOOD_MAC

# The three questions, asked in one vtysh run (each answers one JSON document, printed one after the other).
COMMANDS = ("show bgp l2vpn evpn summary json", "show evpn vni json", "show evpn mac vni all json")


@dataclass
class FrrFacts:
    """FRR's answers; ``error`` says why there are none (vtysh missing, a daemon not running)."""

    error: Optional[str] = None
    sessions: Dict[str, str] = field(default_factory=dict)  # BGP peer -> its state ("Established", "Active"...)
    vteps: Dict[int, List[str]] = field(default_factory=dict)  # VNI -> remote VTEPs zebra knows
    macs: Dict[int, Dict[str, str]] = field(default_factory=dict)  # VNI -> remote MAC -> its VTEP


def read(run_command: Callable, vty_socket: Optional[str]) -> FrrFacts:
    """Ask FRR with ``run_command(argv) -> (rc, out, err)``; ``vty_socket``: the directory of its vty sockets (FRR
    run inside a namespace with its own, as the role runs it in the lab), None for FRR's default."""
    vtysh = shutil.which("vtysh")
    if vtysh is None:
        return FrrFacts("vtysh (package frr) was not found")
    argv = [vtysh] + (["--vty_socket", vty_socket] if vty_socket else [])
    for command in COMMANDS:
        argv += ["-c", command]
    rc, out, err = run_command(argv)
    if rc != 0:
        return FrrFacts("vtysh failed (exit %d): %s" % (rc, (err or out).strip() or "no message"))
    return parse(out)


def parse(text: str) -> FrrFacts:
    """FrrFacts from vtysh's output for COMMANDS: three JSON documents one after the other."""
    documents, decoder, at = [], json.JSONDecoder(), 0
    while True:
        while at < len(text) and text[at].isspace():
            at += 1
        if at >= len(text):
            break
        try:
            document, at = decoder.raw_decode(text, at)
        except ValueError:
            return FrrFacts("vtysh answered something that is not JSON: %r" % text[at : at + 80])
        documents.append(document)
    if len(documents) != len(COMMANDS) or not all(isinstance(document, dict) for document in documents):
        # an empty {} is what vtysh prints for a daemon it cannot reach
        return FrrFacts("vtysh answered %d of %d questions (is FRR running?)" % (len(documents), len(COMMANDS)))
    summary, vnis, macs = documents
    if not summary:
        return FrrFacts("bgpd did not answer (is it running, with the l2vpn evpn address family?)")
    facts = FrrFacts()
    facts.sessions = {peer: str(info.get("state", "")) for peer, info in summary.get("peers", {}).items()}
    for vni, info in vnis.items():
        if str(vni).isdigit() and isinstance(info, dict):
            facts.vteps[int(vni)] = sorted(str(vtep) for vtep in info.get("remoteVteps") or [])
    for vni, info in macs.items():
        if str(vni).isdigit() and isinstance(info, dict):
            facts.macs[int(vni)] = {
                mac.lower(): str(entry.get("remoteVtep"))
                for mac, entry in (info.get("macs") or {}).items()
                if isinstance(entry, dict) and entry.get("type") == "remote"
            }
    return facts


def frr_view(facts: FrrFacts) -> dict:
    """FRR's state as cnm_info reports it: reachable or not (and why), and each BGP session."""
    return {
        "reachable": facts.error is None,
        "error": facts.error,
        "sessions": [
            {"peer": peer, "state": state, "established": state == "Established"}
            for peer, state in sorted(facts.sessions.items())
        ],
    }


def frr_drift(facts: FrrFacts) -> List[Tuple[str, str, str]]:
    """(kind, object, message) for FRR not answering and for each BGP session that is not up."""
    if facts.error is not None:
        return [("evpn_frr_unreachable", "frr", "FRR does not answer: %s" % facts.error)]
    return [
        ("evpn_session_down", "bgp %s" % peer, "the BGP EVPN session with %s is %s, not Established" % (peer, state))
        for peer, state in sorted(facts.sessions.items())
        if state != "Established"
    ]


def overlay_view(
    name: str, vni: int, device: str, entries: Optional[List[Tuple[str, str]]], facts: FrrFacts
) -> Tuple[dict, List[Tuple[str, str, str, dict, dict]]]:
    """One EVPN overlay: its remote VTEPs and MACs as FRR knows them and as the kernel holds them (``entries``: the
    VXLAN device's (MAC, VTEP) entries, None when it is missing), and (kind, object, message, expected, found) for
    each disagreement."""
    kernel_vteps = sorted({vtep for mac, vtep in entries or () if mac == FLOOD_MAC})
    kernel_macs = {mac.lower(): vtep for mac, vtep in entries or () if mac != FLOOD_MAC}
    known = facts.error is None
    frr_vteps = facts.vteps.get(vni) if known else None
    frr_macs = facts.macs.get(vni, {}) if known else None
    view = {
        "network": name,
        "vni": vni,
        "vni_known": frr_vteps is not None if known else None,
        "remote_vteps": {"frr": frr_vteps, "kernel": kernel_vteps if entries is not None else None},
        "remote_macs": {
            "frr": _mac_list(frr_macs) if frr_macs is not None else None,
            "kernel": _mac_list(kernel_macs) if entries is not None else None,
        },
    }
    found: List[Tuple[str, str, str, dict, dict]] = []
    if not known or entries is None:
        return view, found  # said once (evpn_frr_unreachable), or by network_device_missing
    if frr_vteps is None:
        found.append(
            (
                "evpn_vni_unknown",
                "vni %d" % vni,
                "network %s: zebra does not know VNI %d (is zebra running in this namespace, %s up?)"
                % (name, vni, device),
                {"vni": vni},
                None,
            )
        )
        frr_vteps = []
    for vtep in sorted(set(frr_vteps) - set(kernel_vteps)):
        message = "network %s: FRR knows VTEP %s but %s has no flood entry towards it" % (name, vtep, device)
        found.append(("evpn_vtep_missing", "vxlan %s vtep %s" % (device, vtep), message, {"vtep": vtep}, None))
    for vtep in sorted(set(kernel_vteps) - set(frr_vteps)):
        message = "network %s: %s floods to %s, which FRR does not know (a stale zebra entry)" % (name, device, vtep)
        found.append(("evpn_vtep_stale", "vxlan %s vtep %s" % (device, vtep), message, None, {"vtep": vtep}))
    for mac, vtep in sorted(frr_macs.items()):
        if kernel_macs.get(mac) != vtep:
            message = "network %s: FRR has %s behind %s but the FDB of %s %s" % (
                name,
                mac,
                vtep,
                device,
                "sends it to %s" % kernel_macs[mac] if mac in kernel_macs else "lacks it",
            )
            found_entry = {"mac": mac, "vtep": kernel_macs[mac]} if mac in kernel_macs else None
            found.append(("evpn_mac_missing", "fdb %s" % mac, message, {"mac": mac, "vtep": vtep}, found_entry))
    for mac, vtep in sorted(kernel_macs.items()):
        if mac not in frr_macs:
            message = "network %s: the FDB of %s holds %s dst %s, which FRR does not know (a stale zebra entry)" % (
                name,
                device,
                mac,
                vtep,
            )
            found.append(("evpn_mac_stale", "fdb %s" % mac, message, None, {"mac": mac, "vtep": vtep}))
    return view, found


def _mac_list(macs: Dict[str, str]) -> List[dict]:
    return [{"mac": mac, "vtep": vtep} for mac, vtep in sorted(macs.items())]
