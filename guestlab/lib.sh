# shellcheck shell=bash disable=SC2034  # the variables are used by the scripts that source this file
# Shared settings and helpers of the guest lab scripts (sourced, never run).
#
# Everything the lab makes carries its prefix (GUESTLAB_PREFIX, default cnmgl): the namespace
# PREFIX-mgmt that holds the guests' taps, bridges and qemu processes, and the runtime directory
# /run/cnm-guestlab/PREFIX (qcow2 overlays, pid files, consoles, the SSH key, the inventory).
# Images are cached in GUESTLAB_CACHE (default /var/cache/cnm-guestlab) between runs.

GUESTLAB_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)"
GUESTLAB_ROOT="$(cd "$GUESTLAB_DIR/.." && pwd -P)"
GUESTLAB_PREFIX="${GUESTLAB_PREFIX:-cnmgl}"
GUESTLAB_CACHE="${GUESTLAB_CACHE:-/var/cache/cnm-guestlab}"
GUESTLAB_STATE="${GUESTLAB_STATE:-/run/cnm-guestlab/$GUESTLAB_PREFIX}"
GUESTLAB_NETNS="$GUESTLAB_PREFIX-mgmt"
GUESTLAB_MEMORY="${GUESTLAB_MEMORY:-256}"        # MiB per guest
# The emulated CPU model (qemu -cpu). la57=off: with 5-level paging on (-cpu max of QEMU 7.2 TCG)
# a guest that reboots never comes back (no console output, qemu spinning; measured 2026-12-06).
GUESTLAB_CPU="${GUESTLAB_CPU:-max,la57=off}"
GUESTLAB_BOOT_TIMEOUT="${GUESTLAB_BOOT_TIMEOUT:-180}"  # seconds until every guest answers SSH
# The management network exists only inside the lab namespace: the namespace is .1, guest N is
# .(10+N). The underlay joins the guests only (no address in the namespace): guest N is
# 192.0.2.(10+N) on eth1, as the namespace lab's hosts are on eth0.
GUESTLAB_MGMT_NET=10.99.0
GUESTLAB_UNDERLAY_NET=192.0.2

if ! [[ "$GUESTLAB_PREFIX" =~ ^[a-z][a-z0-9]{0,7}$ ]]; then
    echo "guestlab: GUESTLAB_PREFIX must be 1-8 lower-case letters or digits, starting with a letter (got '$GUESTLAB_PREFIX')" >&2
    exit 2
fi

say() { printf 'guestlab: %s\n' "$*"; }
die() { printf 'guestlab: %s\n' "$*" >&2; exit 1; }

# Seconds since the epoch with fractions, and the difference of two of them, for timings.
now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }

in_lab_netns() { nsenter --net="/run/netns/$GUESTLAB_NETNS" "$@"; }

# The image of this checkout's recipe: its directory under the cache holds vmlinuz, initrd.img,
# rootfs.raw and info.txt once complete (image.sh prints the path).
image_dir_file() { printf '%s/current\n' "$GUESTLAB_CACHE"; }
