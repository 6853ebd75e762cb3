"""playbooks/topology.yml on a real lab: the demo (playbooks/demo.yml) and the overlay (playbooks/overlay.yml) on two
namespace hosts, drawn through ansible-playbook and the netns connection, then drawn again after drift made by hand.

Checks that Graphviz reads the DOT, that the SVG is written, that every endpoint cnm_info lists is in the picture
with its addresses, and that drift shows in red (and nothing is red before it).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from xml.etree import ElementTree

import pytest
from test_lab import assert_ok, recap_changed, run_playbook
from test_playbooks import PLAYBOOKS, lab_of

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or not shutil.which("ip") or not shutil.which("nsenter") or not shutil.which("dot"),
    reason="needs root, ip, nsenter and Graphviz's dot",
)
RED = "#cc0000"


def svg_texts(svg: Path) -> set:
    """The text elements of an SVG, one per label line (Graphviz writes some characters as references: &#45;)."""
    return {element.text for element in ElementTree.parse(svg).getroot().iter("{http://www.w3.org/2000/svg}text")}


def read_info(inventory: str, env: dict, tmp_path: Path) -> dict:
    """cnm_info of every lab host, by host name, as a playbook of the test's own reads it."""
    dump = tmp_path / "info.json"
    playbook = tmp_path / "info.yml"
    playbook.write_text(
        "- hosts: cnm_lab\n  gather_facts: false\n  tasks:\n"
        "    - {cnm.network.cnm_info: {}, register: info}\n"
        "    - ansible.builtin.copy:\n"
        "        content: \"{{ dict(ansible_play_hosts | zip(ansible_play_hosts | map('extract', hostvars, 'info'))) "
        '| to_json }}"\n'
        "        dest: %s\n"
        "      delegate_to: localhost\n      run_once: true\n" % dump
    )
    assert_ok(run_playbook(playbook, inventory, env))
    return json.loads(dump.read_text())


def test_topology_of_the_demo_and_overlay_lab(tmp_path: Path):
    with lab_of(tmp_path, 2) as (prefix, inventory, env):
        inventory = str(inventory)
        assert_ok(run_playbook(PLAYBOOKS / "demo.yml", inventory, env))
        assert_ok(run_playbook(PLAYBOOKS / "overlay.yml", inventory, env))
        svg = tmp_path / "picture" / "lab.svg"
        draw = ("-e", "topology_output=%s" % svg)
        first = run_playbook(PLAYBOOKS / "topology.yml", inventory, env, *draw)
        assert_ok(first)
        dot = (tmp_path / "picture" / "lab.dot").read_text()
        mermaid = (tmp_path / "picture" / "lab.mmd").read_text()
        canon = subprocess.run(["dot", "-Tcanon"], input=dot, capture_output=True, text=True, timeout=60, check=False)
        assert canon.returncode == 0 and canon.stderr == "", canon.stderr
        picture = svg.read_text()
        assert picture.startswith("<?xml") and "<svg" in picture and picture.rstrip().endswith("</svg>")
        texts = svg_texts(svg)
        # the lab converged: no drift, nothing red (Mermaid defines its class drift, and gives it to nothing)
        assert RED not in picture and RED not in dot
        assert not [line for line in mermaid.splitlines() if line.lstrip().startswith(("linkStyle", "style "))]
        assert not [line for line in mermaid.splitlines() if line.startswith("  class ") and line.endswith(" drift")]

        info = read_info(inventory, env, tmp_path)
        assert sorted(info) == ["h1", "h2"]
        endpoints = [(host, item) for host in sorted(info) for item in info[host]["endpoints"]]
        assert len(endpoints) == 2 * 5  # per host: web1, web2 (bridge), mv1 (macvlan), app1, app2 (overlay)
        for host, item in endpoints:
            lines = [item["sandbox"], "eth0 %s" % item["ipv4_address"]]
            lines += [item["ipv6_address"]] if item["ipv6_address"] else []
            for line in lines + [item["mac_address"]]:
                assert line in texts, (host, line)
            assert "<br>".join(lines) in mermaid, (host, lines)
        # the overlay's two VTEPs, and the peer edge between them
        vni = [item["vni"] for item in info["h1"]["networks"] if item["name"] == "ov0"][0]
        assert {"overlay ov0, VNI %s" % vni, "VTEP 192.0.2.11", "VTEP 192.0.2.12"} <= texts
        assert '"device/h1/vx-ov0" -> "device/h2/vx-ov0"' in dot

        # Drift by hand on h2: its web2 endpoint's MTU. cnm_info reports endpoint_mtu; the picture shows it in red.
        subprocess.run(
            ["ip", "netns", "exec", "%s-h2-web2" % prefix, "ip", "link", "set", "eth0", "mtu", "1400"], check=True
        )
        drifted = run_playbook(PLAYBOOKS / "topology.yml", inventory, env, *draw)
        assert_ok(drifted)
        assert recap_changed(drifted) == {"h1": 3, "h2": 0}  # the .dot, the .mmd and the SVG (not the directory)
        dot = (tmp_path / "picture" / "lab.dot").read_text()
        red = [line for line in dot.splitlines() if RED in line]
        assert len(red) == 1 and red[0].lstrip().startswith('"endpoint/h2/web/netns:%s-h2-web2"' % prefix), red
        assert "drift: endpoint_mtu" in svg_texts(svg)
