#!/usr/bin/env bash
# Real traffic for the reboot proof, run on the rebooted guest:
#   reboot_traffic.sh NETNS_A NETNS_B ADDRESS_B PIDFILE
# Pings ADDRESS_B (NETNS_B's endpoint) from NETNS_A, 3 echoes that must all be answered, resolves
# NETNS_B's name to ADDRESS_B in NETNS_A, then
# starts (unless it runs) a TCP listener in NETNS_A on port 80 that answers every connection with
# "cnm-rb NETNS_A" and waits until it listens; its pid goes to PIDFILE (under /run, so a reboot
# forgets it as it forgets the process). Prints one line per check; exit 1 if one failed.
set -u
ns_a="$1" ns_b="$2" address_b="$3" pidfile="$4"
failed=0

if out="$(ip netns exec "$ns_a" ping -c 3 -i 0.2 -w 15 "$address_b" 2>&1)"; then
    echo "$ns_a -> $ns_b ($address_b) ping: pass ($(grep -o '[0-9]* received' <<<"$out"))"
else
    echo "$ns_a -> $ns_b ($address_b) ping: fail: $(tail -n 2 <<<"$out" | tr '\n' ' ')"
    failed=1
fi

# The network has dns: true: NETNS_B's name (its namespace's) resolves in NETNS_A, through the resolv.conf
# that ip netns exec mounts, at the gateway (aardvark-dns).
if found="$(ip netns exec "$ns_a" getent ahostsv4 "$ns_b" | awk '{ print $1 }' | sort -u)" && [ "$found" = "$address_b" ]; then
    echo "$ns_a resolves $ns_b: pass ($found)"
else
    echo "$ns_a resolves $ns_b: fail (got '${found:-}', expected $address_b)"
    failed=1
fi

if [ -f "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null; then
    echo "listener in $ns_a: running (pid $(cat "$pidfile"))"
else
    rm -f "$pidfile"
    # The listener writes its pid file once it listens: waiting for the file waits for that.
    ip netns exec "$ns_a" setsid python3 -c '
import os, socket, sys
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", 80)); s.listen(16)
with open(sys.argv[1] + ".tmp", "w") as f:
    f.write(str(os.getpid()))
os.rename(sys.argv[1] + ".tmp", sys.argv[1])
while True:
    c, peer = s.accept()
    c.sendall(("cnm-rb %s %s\n" % (sys.argv[2], peer[0])).encode()); c.close()' "$pidfile" "$ns_a" </dev/null >/dev/null 2>&1 &
    for _ in $(seq 200); do
        [ -f "$pidfile" ] && break
        kill -0 $! 2>/dev/null || break
        sleep 0.1
    done
    if [ -f "$pidfile" ]; then
        echo "listener in $ns_a: started (pid $(cat "$pidfile")), port 80"
    else
        echo "listener in $ns_a: fail: it did not start"
        failed=1
    fi
fi
exit "$failed"
