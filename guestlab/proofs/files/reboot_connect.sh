#!/usr/bin/env bash
# Run on another guest (a machine of the underlay): reboot_connect.sh HOST_IP PORT WANT
# Connects over TCP to HOST_IP:PORT (the rebooted guest's published port) and prints the answer;
# exit 1 unless it arrives within 20 s and starts with WANT.
set -u
host="$1" port="$2" want="$3"
if answer="$(timeout 25 python3 -c '
import socket, sys
c = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=20)
print(c.makefile().readline().strip())' "$host" "$port" 2>&1)" && [ "${answer#"$want"}" != "$answer" ]; then
    echo "$(hostname) -> $host:$port over the underlay: pass ($answer)"
else
    echo "$(hostname) -> $host:$port over the underlay: fail ($answer)"
    exit 1
fi
