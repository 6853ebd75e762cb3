"""Encrypted overlays on this kernel (no ESP, no GCM): what can be proven here, for real.

- ``encrypted: true`` is refused naming the missing kernel features, in check mode too, and changes nothing;
- the firewall's drop of clear VXLAN for an encrypted overlay's VNI, as rendered, stops real VXLAN traffic
  (the device's counters do not move) while VXLAN of another VNI on the same port still flows;
- the XFRM netlink client programs, switches and removes real policies (this kernel has XFRM, only no ESP);
- when the kernel refuses the ESP state although the detection said yes, the run is undone: no device, no
  policy, no rule, the store unchanged - never VXLAN in clear.

The ESP traffic itself is proven in the guest lab (guestlab/proofs/encrypted_overlay.yml).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile

import pytest
import test_overlay
from conftest import COLLECTIONS, ingress_counters, pings
from test_overlay import SUBNET, VTEPS, overlay, peers_of

hosts = test_overlay.hosts  # the three VTEP hosts and the rogue of the overlay tests, reused

KEY = "0123456789abcdef0123"
REQID_4789 = 0x636E0000 + 4789
# the collection's own detection, run as the module would (pytest's ansible plugin loader is not involved)
FEATURES = json.loads(
    subprocess.run(
        [
            sys.executable,
            "-c",
            "import json; from ansible_collections.cnm.network.plugins.module_utils import ipsec, kernel; "
            "print(json.dumps(ipsec.kernel_features(kernel.Kernel())))",
        ],
        env=dict(os.environ, PYTHONPATH=COLLECTIONS),
        capture_output=True,
        text=True,
        check=True,
    ).stdout
)
LACKS_ESP = not all(FEATURES.values())


def python_in(host, script: str, **kwargs):
    """Run a Python script inside the host namespace with this checkout's collection importable."""
    with tempfile.NamedTemporaryFile("w", suffix=".py", delete=False) as handle:
        handle.write(script)
    try:
        return host.sh("PYTHONPATH=%s %s %s" % (COLLECTIONS, host.python, handle.name), **kwargs)
    finally:
        os.unlink(handle.name)


@pytest.mark.skipif(not LACKS_ESP, reason="this kernel has ESP and AES-GCM: the refusal cannot be shown here")
@pytest.mark.parametrize("check", [False, True], ids=["run", "check_mode"])
def test_encrypted_is_refused_naming_what_this_kernel_lacks_and_changes_nothing(hosts, check):
    made, _rogue = hosts
    host = made[1]
    before = host.snapshot()
    result = overlay(host, 1, [VTEPS[2]], encrypted=True, encryption_key=KEY, check=check)
    assert result.get("failed") and result["msg"].startswith("option 'encrypted'"), result
    missing = [name for name, present in FEATURES.items() if not present]
    assert ", ".join(missing) in result["msg"] and "never" not in result["msg"] and "in clear" in result["msg"]
    assert KEY not in json.dumps(result)
    assert host.snapshot() == before
    assert host.sh("ip xfrm state; ip xfrm policy").stdout == ""


BAD_KEYS = {
    "key_too_short": (dict(encryption_key="short-key"), "encryption_key", "short-key"),
    "accepted_key_too_short": (
        dict(encryption_key=KEY, encryption_keys=["tiny-key-1"]),
        "encryption_keys[0]",
        "tiny-key-1",
    ),
}


@pytest.mark.parametrize("args, option, secret", list(BAD_KEYS.values()), ids=list(BAD_KEYS))
def test_a_weak_key_is_refused_without_showing_it(hosts, args, option, secret):
    made, _rogue = hosts
    host = made[1]
    before = host.snapshot()
    result = overlay(host, 1, [], encrypted=True, **args)
    assert result.get("failed") and result["msg"].startswith("option '%s'" % option), result
    assert secret not in json.dumps(result)
    assert host.snapshot() == before


def test_the_clear_vxlan_drop_stops_real_vxlan_of_its_vni_only(hosts):
    made, _rogue = hosts
    one, two = made[1], made[2]
    endpoints = {}
    for i, host in ((1, one), (2, two)):
        host.ok(
            "cnm_overlay",
            name="ov",
            vni=4200,
            subnet=SUBNET,
            ip_range="10.200.%d.0/24" % i,
            local_ip=VTEPS[i],
            peers=[],
        )
        endpoints[i] = host.ok("cnm_endpoint", network="ov", netns=host.sandbox("c"))["endpoint"]
    for i, host in ((1, one), (2, two)):
        host.ok(
            "cnm_overlay",
            name="ov",
            vni=4200,
            subnet=SUBNET,
            ip_range="10.200.%d.0/24" % i,
            local_ip=VTEPS[i],
            peers=peers_of(i, endpoints),
        )
    # another VXLAN network on the same UDP port, VNI 4201, made by hand on both hosts
    for i, host in ((1, one), (2, two)):
        host.sh(
            "ip link add vxo type vxlan id 4201 dstport 4789 local %s remote %s && ip addr add 10.99.0.%d/24 dev vxo "
            "&& ip link set vxo up" % (VTEPS[i], VTEPS[3 - i], i)
        )
    assert pings(two.sandbox("c"), endpoints[1]["ipv4_address"]) and pings(two.name, "10.99.0.1")

    # host one's table as cnm renders it for the same overlay once encrypted, applied to the real kernel
    networks = {"ov": dict(one.store()["networks"]["ov"], encrypted=True)}
    python_in(one, RENDER_SCRIPT % json.dumps(networks))
    assert "cnm network ov vxlan clear drop" in one.ruleset() and "meta ipsec missing" in one.ruleset()

    # only the sandbox's frames: VXLAN of VNI 4200 from host two whose inner frame comes from the sandbox's MAC
    mac = endpoints[2]["mac_address"]
    with ingress_counters(
        one.name,
        underlay=(
            "eth0",
            "ip saddr %s udp dport 4789 @th,96,24 4200 @th,176,48 0x%s" % (VTEPS[2], mac.replace(":", "")),
        ),
        device=("vx-ov", "ether saddr %s" % mac),
    ) as counts:
        assert not pings(two.sandbox("c"), endpoints[1]["ipv4_address"])
        seen = counts()
    # the sandbox's clear VXLAN of the encrypted VNI arrived, and not one frame of it reached the device
    assert seen["underlay"] >= 1 and seen["device"] == 0, seen
    assert pings(two.name, "10.99.0.1")  # VNI 4201 on the same port is not affected

    # the next run of the (clear) overlay repairs the table: the drop goes, the traffic flows again
    result = one.ok("cnm_overlay", name="ov", vni=4200, subnet=SUBNET, ip_range="10.200.1.0/24", local_ip=VTEPS[1])
    assert result["changed"] and "vxlan clear drop" not in one.ruleset()
    with ingress_counters(one.name, device=("vx-ov", "ether saddr %s" % mac)) as counts:  # the counter sees them now
        assert pings(two.sandbox("c"), endpoints[1]["ipv4_address"])
        assert counts()["device"] >= 1


RENDER_SCRIPT = r"""
import json, subprocess
from ansible_collections.cnm.network.plugins.module_utils import firewall
from ansible_collections.cnm.network.plugins.module_utils.records import NetworkRecord
listing = json.loads(subprocess.run(["nft", "-j", "list", "ruleset"], capture_output=True, text=True,
                                    check=True).stdout)
networks = {name: NetworkRecord.from_dict(record) for name, record in json.loads(%r).items()}
commands = firewall.transaction(firewall.parse(listing), firewall.render(networks))
subprocess.run(["nft", "-j", "-f", "-"], input=json.dumps({"nftables": commands}), text=True, check=True)
"""


XFRM_SCRIPT = r"""
import json, sys
from ansible_collections.cnm.network.plugins.module_utils import ipsec
from ansible_collections.cnm.network.plugins.module_utils.xfrm import Xfrm
x = Xfrm()
steps = {}
old = ipsec.render("192.0.2.11", ["192.0.2.12", "192.0.2.13"], ["first-key-0123456789"], 4789)
for policy in old["policies"]:
    x.add_policy(policy)
steps["added"] = x.policies()
new = ipsec.render("192.0.2.11", ["192.0.2.12", "192.0.2.13"], ["second-key-0123456789"], 4789)
for policy in new["policies"]:
    if policy["dir"] == "out":
        x.add_policy(policy, update=True)
steps["switched"] = x.policies()
try:
    x.add_state(new["states"][0])
    steps["state"] = "added"
except OSError as exc:
    steps["state"] = "%d %s" % (exc.errno, exc.strerror)
print(json.dumps({"steps": steps, "old": old["policies"], "new": new["policies"]}))
"""


def test_the_xfrm_client_programs_real_policies(hosts):
    made, _rogue = hosts
    host = made[1]
    out = json.loads(python_in(host, XFRM_SCRIPT).stdout)
    strip = [{k: v for k, v in p.items() if k != "index"} for p in out["steps"]["added"]]
    assert sorted(strip, key=json.dumps) == sorted(out["old"], key=json.dumps)
    listing = host.sh("ip xfrm policy").stdout
    for policy in out["new"]:
        if policy["dir"] == "out":  # the switch replaced the template in place
            assert "proto esp spi 0x%08x reqid %d mode transport" % (policy["tmpl"]["spi"], REQID_4789) in listing
    assert listing.count("dir out") == 2 and listing.count("dir in") == 2 and "dport 4789" in listing
    if LACKS_ESP:
        assert out["steps"]["state"].startswith(("38 ", "93 ", "2 ")), out["steps"]["state"]
        assert "ESP" in out["steps"]["state"]
    host.sh("ip xfrm policy flush")


MODULE_SCRIPT = r"""
import json, sys, tempfile
from ansible_collections.cnm.network.plugins.module_utils import ipsec
# detection fooled
ipsec.kernel_features = lambda kernel: {"XFRM": True, "ESP (esp4)": True, "AES-GCM (rfc4106(gcm(aes)))": True}
with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as handle:
    json.dump({"ANSIBLE_MODULE_ARGS": json.loads(%r)}, handle)
sys.argv = ["cnm_overlay", handle.name]
from ansible_collections.cnm.network.plugins.modules import cnm_overlay
cnm_overlay.main()
"""


@pytest.mark.skipif(not LACKS_ESP, reason="this kernel accepts ESP states")
def test_a_kernel_refusing_the_esp_state_leaves_nothing_and_sends_nothing_in_clear(hosts):
    made, _rogue = hosts
    host = made[1]
    before = host.snapshot()
    args = dict(
        name="ov",
        vni=4200,
        subnet=SUBNET,
        ip_range="10.200.1.0/24",
        local_ip=VTEPS[1],
        peers=[VTEPS[2]],
        encrypted=True,
        encryption_key=KEY,
        _ansible_diff=True,
    )
    proc = python_in(host, MODULE_SCRIPT % json.dumps(args), check=False)
    result = json.loads(proc.stdout)
    assert (
        result.get("failed")
        and "add xfrm state 192.0.2.11 -> 192.0.2.12 esp spi" in result["msg"]
        and "undid" in result["msg"]
    ), result
    assert KEY not in proc.stdout
    assert host.snapshot() == before
    assert host.sh("ip xfrm state; ip xfrm policy").stdout == "" and "vx-ov" not in host.links()
