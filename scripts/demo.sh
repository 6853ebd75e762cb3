#!/usr/bin/env bash
# The main job on a fresh machine (as root): install what is needed, build the lab of namespace
# hosts, and run playbooks/demo.yml (bridge networks, published ports) and playbooks/overlay.yml
# (one VXLAN overlay across the hosts) on it, with their connectivity checks.
#   bash scripts/demo.sh            # lab of 3 hosts, prefix cnmlab; rerun: nothing changes
#   bash scripts/demo.sh down       # remove the demo's objects and the lab
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)"
cd "$ROOT"
bash scripts/setup.sh
export PATH="$ROOT/.venv/bin:$PATH"
PREFIX="${CNM_LAB_PREFIX:-cnmlab}"
SIZE="${CNM_LAB_SIZE:-3}"
INVENTORY=".lab/$PREFIX.yml"

if [ "${1:-up}" = down ]; then
    if [ -f "$INVENTORY" ]; then
        ansible-playbook -i "$INVENTORY" playbooks/demo.yml -e demo_state=absent
    fi
    ansible-playbook -i localhost, playbooks/lab_down.yml -e "lab_prefix=$PREFIX"
    exit 0
fi

ansible-playbook -i localhost, playbooks/lab_up.yml -e "lab_prefix=$PREFIX" -e "lab_size=$SIZE"
ansible-playbook -i "$INVENTORY" playbooks/demo.yml
# The overlay across the lab's hosts; its last task pings every remote endpoint from every local one.
ansible-playbook -i "$INVENTORY" playbooks/overlay.yml
# A picture of it all (drift in red): the SVG, with the Graphviz and Mermaid files next to it.
ansible-playbook -i "$INVENTORY" playbooks/topology.yml -e "topology_output=$ROOT/.lab/$PREFIX.svg"
echo
echo "The lab is up: its hosts are the namespaces $PREFIX-h1..$PREFIX-h$SIZE (inventory $INVENTORY)."
echo "Look inside: nsenter --net=/run/netns/$PREFIX-h1 ip -br addr"
echo "The picture of the network: $ROOT/.lab/$PREFIX.svg (Graphviz: .lab/$PREFIX.dot, Mermaid: .lab/$PREFIX.mmd)"
echo "Remove everything: bash scripts/demo.sh down"
