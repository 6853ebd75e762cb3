#!/usr/bin/env bash
# Start the guest lab: bash guestlab/up.sh [N]   (N guests, default 3, at most 9)
#
# Builds the image first when the cache has none (image.sh). Then:
#   - the namespace PREFIX-mgmt (default cnmgl-mgmt) with two bridges: mgbr, the management
#     network 10.99.0.0/24 (the namespace is 10.99.0.1, guest gN is 10.99.0.(10+N)), and ulbr,
#     the underlay, which joins the guests' eth1 (192.0.2.(10+N)/24) to each other and to nothing
#     else (no address in the namespace);
#   - per guest two taps in that namespace and a qemu process started inside it (TCG, 1 vCPU,
#     GUESTLAB_MEMORY MiB), its disk a qcow2 overlay over the shared read-only image, its
#     identity (name, addresses, MACs, machine id, the lab's SSH key) on the kernel command line;
#     no user-mode networking and no link to any interface of this machine;
#   - an SSH key made for this lab run, and the inventory RUNDIR/inventory.yml (group cnm_lab,
#     ansible_connection ssh through the namespace) for bash guestlab/run.sh PLAYBOOK.
# Waits until every guest answers SSH and prints the boot times. Stop with bash guestlab/down.sh.
# Exit status 3: a guest did not boot (stopped, or no SSH within GUESTLAB_BOOT_TIMEOUT seconds);
# what was started is stopped again.
set -euo pipefail
# shellcheck source=guestlab/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

count="${1:-${GUESTLAB_GUESTS:-3}}"
[[ "$count" =~ ^[1-9]$ ]] || die "usage: bash guestlab/up.sh [N]  (N = 1..9 guests)"
[ "$(id -u)" -eq 0 ] || die "up.sh needs root (namespaces, taps)"
for tool in qemu-system-x86_64 qemu-img nsenter ip ssh ssh-keygen socat; do
    command -v "$tool" >/dev/null || die "$tool is missing: run bash guestlab/setup.sh"
done
if [ -e "/run/netns/$GUESTLAB_NETNS" ] || [ -e "$GUESTLAB_STATE" ]; then
    die "a lab $GUESTLAB_PREFIX is up already (namespace $GUESTLAB_NETNS or $GUESTLAB_STATE exists): bash guestlab/down.sh first"
fi

bash "$GUESTLAB_DIR/image.sh"
image="$(readlink -f "$GUESTLAB_CACHE/current")"
[ -f "$image/complete" ] || die "no complete image in $image"

started="$(now)"
# shellcheck disable=SC2317  # called by the trap
undo_on_failure() {  # a half-made lab is taken down again
    local rc=$?
    if [ "$rc" -ne 0 ]; then
        say "up.sh failed (exit $rc): stopping what it started"
        bash "$GUESTLAB_DIR/down.sh" --quiet || true
    fi
}
trap undo_on_failure EXIT

mkdir -p "$GUESTLAB_STATE"
chmod 0700 "$GUESTLAB_STATE"
ssh-keygen -q -t ed25519 -N '' -C "cnm-guestlab-$GUESTLAB_PREFIX" -f "$GUESTLAB_STATE/id_ed25519"
read -r key_type key_body _ <"$GUESTLAB_STATE/id_ed25519.pub"

ip netns add "$GUESTLAB_NETNS"
ip -n "$GUESTLAB_NETNS" link set lo up
ip -n "$GUESTLAB_NETNS" link add mgbr type bridge
ip -n "$GUESTLAB_NETNS" link add ulbr type bridge
# The namespace is only a wire on the underlay: no IPv6 housekeeping packets from it there.
in_lab_netns sysctl -q -w net.ipv6.conf.ulbr.disable_ipv6=1
ip -n "$GUESTLAB_NETNS" address add "$GUESTLAB_MGMT_NET.1/24" dev mgbr
ip -n "$GUESTLAB_NETNS" link set mgbr up
ip -n "$GUESTLAB_NETNS" link set ulbr up

ssh_opts=(-i "$GUESTLAB_STATE/id_ed25519" -o IdentitiesOnly=yes -o BatchMode=yes -o StrictHostKeyChecking=no
    -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR -o ControlMaster=no -o ControlPath=none
    -o "ProxyCommand=nsenter --net=/run/netns/$GUESTLAB_NETNS socat - TCP:%h:%p")
printf '%s\n' "${ssh_opts[@]}" >"$GUESTLAB_STATE/ssh-options"

declare -A boot_start=() boot_secs=()
for n in $(seq 1 "$count"); do
    guest="g$n"
    ip -n "$GUESTLAB_NETNS" tuntap add dev "${guest}m" mode tap
    ip -n "$GUESTLAB_NETNS" tuntap add dev "${guest}u" mode tap
    ip -n "$GUESTLAB_NETNS" link set "${guest}m" master mgbr up
    ip -n "$GUESTLAB_NETNS" link set "${guest}u" master ulbr up
    qemu-img create -q -f qcow2 -F raw -b "$image/rootfs.raw" "$GUESTLAB_STATE/$guest.qcow2"
    mgmt_mac="$(printf '52:54:00:0a:63:%02x' "$n")"
    ul_mac="$(printf '52:54:00:c0:02:%02x' "$n")"
    machine_id="$(od -An -tx1 -N16 /dev/urandom | tr -d ' \n')"
    append=(console=ttyS0 quiet loglevel=3 panic=-1 mitigations=off no_timer_check
        "cnmgl.host=$guest" "systemd.machine_id=$machine_id" "cnmgl.key=$key_type:$key_body"
        "cnmgl.mgmt=$GUESTLAB_MGMT_NET.$((10 + n))/24" "cnmgl.mgmt_mac=$mgmt_mac"
        "cnmgl.ul=$GUESTLAB_UNDERLAY_NET.$((10 + n))/24" "cnmgl.ul_mac=$ul_mac")
    [ -n "${GUESTLAB_DEBUG:-}" ] && append=("${append[@]/quiet/}")
    boot_start[$guest]="$(now)"
    # -nodefaults: no default NIC (that would be user-mode networking), no VGA, no monitor.
    # No -no-reboot: a guest that reboots (guestlab/proofs/tasks/reboot.yml) boots again on the
    # same disk, as a real machine does. A kernel panic (panic=-1) would reboot it in a loop, so
    # the wait below and reboot.yml stop at a "Kernel panic" line on the console.
    in_lab_netns qemu-system-x86_64 -name "$GUESTLAB_PREFIX-$guest" \
        -nodefaults -no-user-config -display none \
        -accel tcg -cpu "$GUESTLAB_CPU" -smp 1 -m "$GUESTLAB_MEMORY" \
        -kernel "$image/vmlinuz" -initrd "$image/initrd.img" -append "${append[*]}" \
        -drive "file=$GUESTLAB_STATE/$guest.qcow2,if=virtio,format=qcow2,cache=unsafe" \
        -netdev "tap,id=mgmt,ifname=${guest}m,script=no,downscript=no" -device "virtio-net-pci,netdev=mgmt,mac=$mgmt_mac" \
        -netdev "tap,id=ul,ifname=${guest}u,script=no,downscript=no" -device "virtio-net-pci,netdev=ul,mac=$ul_mac" \
        -device virtio-rng-pci \
        -serial "file:$GUESTLAB_STATE/$guest.console" \
        -pidfile "$GUESTLAB_STATE/$guest.pid" -daemonize
    printf '%s\n' "$guest" >>"$GUESTLAB_STATE/guests"
done
say "started $count guest(s) (qemu TCG, ${GUESTLAB_MEMORY} MiB each) in namespace $GUESTLAB_NETNS; waiting for SSH"

guest_alive() {  # $1 = guest: its qemu process is running
    local pid
    pid="$(cat "$GUESTLAB_STATE/$1.pid" 2>/dev/null)" || return 1
    [ -r "/proc/$pid/cmdline" ] && tr '\0' ' ' <"/proc/$pid/cmdline" | grep -q -- "-name $GUESTLAB_PREFIX-$1 "
}
waiting=$(seq -f 'g%g' 1 "$count")
while [ -n "$waiting" ]; do
    still=""
    for guest in $waiting; do
        n="${guest#g}"
        if ! guest_alive "$guest"; then
            tail -n 20 "$GUESTLAB_STATE/$guest.console" >&2 || true
            say "guest $guest stopped while booting (console above)"
            exit 3
        fi
        if grep -q 'Kernel panic' "$GUESTLAB_STATE/$guest.console" 2>/dev/null; then
            grep -m 1 -B 10 -A 10 'Kernel panic' "$GUESTLAB_STATE/$guest.console" >&2 || true
            say "guest $guest panicked while booting (console above)"
            exit 3
        fi
        if grep -q 'cnmgl-init: .* ready' "$GUESTLAB_STATE/$guest.console" 2>/dev/null &&
            ssh "${ssh_opts[@]}" -o ConnectTimeout=10 "root@$GUESTLAB_MGMT_NET.$((10 + n))" true 2>/dev/null; then
            boot_secs[$guest]="$(since "${boot_start[$guest]}")"
        else
            still="$still $guest"
        fi
    done
    waiting="${still# }"
    if [ -n "$waiting" ]; then
        if awk -v a="$started" -v b="$(now)" -v t="$GUESTLAB_BOOT_TIMEOUT" 'BEGIN { exit !(b - a > t) }'; then
            for guest in $waiting; do
                say "$guest console (last lines):"
                tail -n 10 "$GUESTLAB_STATE/$guest.console" >&2 || true
            done
            say "timeout: guest(s) $waiting did not answer SSH within ${GUESTLAB_BOOT_TIMEOUT}s"
            exit 3
        fi
        sleep 1
    fi
done

# The inventory: the same roles and modules as on real hosts, over SSH. ControlPersist is off on
# purpose: its master processes would outlive the lab namespace.
inventory="$GUESTLAB_STATE/inventory.yml"
{
    echo "# Written by guestlab/up.sh ($(date -u +%Y-%m-%dT%H:%M:%SZ)); removed by guestlab/down.sh."
    echo "# Guests of the guest lab $GUESTLAB_PREFIX: Debian kernels under qemu, reached over SSH through namespace $GUESTLAB_NETNS."
    echo "all:"
    echo "  vars:"
    echo "    cnm_guestlab_prefix: $GUESTLAB_PREFIX"
    echo "    cnm_guestlab_netns: $GUESTLAB_NETNS"
    echo "    cnm_guestlab_underlay_bridge: ulbr"
    echo "    cnm_guestlab_state: $GUESTLAB_STATE"
    echo "cnm_guestlab:"
    echo "  children:"
    echo "    cnm_lab:"
    echo "cnm_lab:"
    echo "  vars:"
    echo "    cnm_lab_prefix: $GUESTLAB_PREFIX"
    echo "    ansible_connection: ssh"
    echo "    ansible_user: root"
    echo "    ansible_ssh_private_key_file: $GUESTLAB_STATE/id_ed25519"
    echo "    ansible_ssh_args: -o ControlMaster=no -o ControlPath=none"
    echo "    ansible_ssh_common_args: >-"
    echo "      -o IdentitiesOnly=yes -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR"
    echo "      -o ProxyCommand=\"nsenter --net=/run/netns/$GUESTLAB_NETNS socat - TCP:%h:%p\""
    echo "    ansible_ssh_pipelining: true"
    echo "    ansible_timeout: 60"
    echo "    ansible_python_interpreter: /usr/bin/python3"
    echo "    cnm_underlay_if: eth1"
    echo "  hosts:"
    for n in $(seq 1 "$count"); do
        echo "    g$n:"
        echo "      ansible_host: $GUESTLAB_MGMT_NET.$((10 + n))"
        echo "      cnm_underlay_ip: $GUESTLAB_UNDERLAY_NET.$((10 + n))"
    done
} >"$inventory"

mapfile -t guests <"$GUESTLAB_STATE/guests"
rss=0
for guest in "${guests[@]}"; do
    pid="$(cat "$GUESTLAB_STATE/$guest.pid")"
    rss=$((rss + $(awk '$1 == "VmRSS:" { print $2 }' "/proc/$pid/status")))
done
{
    for guest in "${guests[@]}"; do
        printf '%s: SSH after %ss (%s)\n' "$guest" "${boot_secs[$guest]}" \
            "$(grep -o 'ready after [0-9.]*s of guest uptime' "$GUESTLAB_STATE/$guest.console" | sed 's/ready/init/')"
    done
    printf 'all %s guest(s) up in %ss; qemu resident memory %s MiB in all\n' "$count" "$(since "$started")" "$((rss / 1024))"
} | tee "$GUESTLAB_STATE/boot-times" | sed 's/^/guestlab: /'
say "inventory: $inventory   (bash guestlab/run.sh PLAYBOOK; bash guestlab/ssh.sh g1; bash guestlab/down.sh)"
