#!/usr/bin/env bash
# Build the guest lab's image, or find it in the cache: bash guestlab/image.sh [--rebuild]
#
# Everything comes from the Debian archive this machine's apt uses (no image is downloaded):
#   - a minbase root filesystem made by debootstrap, with the packages a managed node of the
#     collection has (python3, iproute2, nftables, aardvark-dns, systemd as its init) plus openssh-server,
#     tcpdump, iputils-ping, netbase (/etc/protocols: `ip xfrm ... proto udp` needs it), kmod
#     (the kernel loads modules on demand), python3-apt (Ansible's package module), procps, frr and
#     frr-pythontools (the EVPN control plane: frr.service and its reload; the service left disabled);
#   - Debian's kernel: the package linux-image-amd64 depends on, fetched with `apt-get download`
#     and unpacked with dpkg-deb -x (never installed on this machine), its modules copied into
#     the root filesystem (without sound, graphics, wireless, ... drivers);
#   - an initramfs of busybox-static (also from the archive) that loads virtio and ext4.
# The result is CACHE/images/NAME/{vmlinuz,initrd.img,rootfs.raw,info.txt}, NAME naming the
# codename, kernel and a hash of the recipe (these scripts, the packages, the versions); the link
# CACHE/current points at it. A rerun with the same recipe prints the cached image and exits.
set -euo pipefail
# shellcheck source=guestlab/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

rebuild=false
case "${1:-}" in
    --rebuild) rebuild=true ;;
    "") ;;
    *) die "usage: bash guestlab/image.sh [--rebuild]" ;;
esac
[ "$(id -u)" -eq 0 ] || die "image.sh needs root (debootstrap, chroot)"
for tool in debootstrap mkfs.ext4 cpio gzip apt-get apt-cache dpkg-deb chroot; do
    command -v "$tool" >/dev/null || die "$tool is missing: run bash guestlab/setup.sh"
done

PACKAGES=(netbase python3 python3-apt iproute2 nftables aardvark-dns systemd openssh-server tcpdump iputils-ping kmod
    procps frr frr-pythontools)
# Units that would only wait or fail in a guest without udev, D-Bus or a terminal, or run apt in the background.
MASKED=(getty.target systemd-logind.service systemd-firstboot.service apt-daily.timer apt-daily-upgrade.timer
    e2scrub_all.timer e2scrub_reap.service fstrim.timer)
# The root disk's modules; the rest of Debian's kernel modules the lab never needs are left out
# (graphics, sound, wireless, ... 400 MB in all).
MODULE_DIRS=(arch block crypto fs lib mm net virt drivers/block drivers/char drivers/crypto drivers/net drivers/virtio)
MODULE_DROP=(net/wireless net/mac80211 net/bluetooth drivers/net/wireless drivers/net/ethernet drivers/net/usb
    drivers/net/can drivers/net/wwan drivers/net/ieee802154 drivers/net/hamradio drivers/net/arcnet)
# What the initramfs loads to mount the root disk (crc32c: ext4's metadata checksums).
INITRAMFS_MODULES=(virtio_pci virtio_blk crc32c_generic ext4)

# shellcheck source=/dev/null  # the build machine's os-release
codename="$(. /etc/os-release && printf '%s' "${VERSION_CODENAME:-}")"
[ -n "$codename" ] || die "no VERSION_CODENAME in /etc/os-release"
# The Debian archive apt uses for this release (not -security or -updates: debootstrap takes one suite).
# shellcheck disable=SC2016  # $(...) are apt's format fields
mirror="$(apt-get indextargets --format '$(ORIGIN) $(RELEASE) $(COMPONENT) $(REPO_URI)' 'Created-By: Packages' |
    awk -v c="$codename" '$1 == "Debian" && $2 == c && $3 == "main" { print $4; exit }')"
[ -n "$mirror" ] || die "apt has no Debian '$codename' main source (see /etc/apt/sources.list*); run apt-get update?"

kernel_pkg="$(apt-cache depends linux-image-amd64 2>/dev/null | awk '$1 == "Depends:" && $2 ~ /^linux-image-/ { print $2; exit }')"
[ -n "$kernel_pkg" ] || die "apt cannot resolve linux-image-amd64 to a kernel package (apt-get update?)"
pkg_version() { apt-cache show --no-all-versions "$1" 2>/dev/null | awk '$1 == "Version:" { print $2; exit }'; }
kernel_version="$(pkg_version "$kernel_pkg")"
busybox_version="$(pkg_version busybox-static)"
if [ -z "$kernel_version" ] || [ -z "$busybox_version" ]; then
    die "apt knows no version of $kernel_pkg or busybox-static"
fi

recipe_hash="$(
    {
        printf '%s\n' "$codename" "$mirror" "$kernel_pkg=$kernel_version" "busybox-static=$busybox_version" \
            "${PACKAGES[*]}" "${MODULE_DIRS[*]}" "${MODULE_DROP[*]}" "${INITRAMFS_MODULES[*]}" "${MASKED[*]}"
        cat "$GUESTLAB_DIR/image.sh" "$GUESTLAB_DIR/files/guest-init" "$GUESTLAB_DIR/files/initramfs-init" \
            "$GUESTLAB_DIR/files/cnmgl-init.service" "$GUESTLAB_DIR/files/cnmgl-ready.service"
    } | sha256sum | cut -c1-12
)"
name="$codename-${kernel_pkg#linux-image-}-$recipe_hash"
images="$GUESTLAB_CACHE/images"
image="$images/$name"

# One build at a time per cache (labs of other prefixes may call this at the same moment).
mkdir -p "$GUESTLAB_CACHE"
exec 9>"$GUESTLAB_CACHE/.lock"
flock 9

if [ -f "$image/complete" ] && ! $rebuild; then
    ln -sfn "images/$name" "$GUESTLAB_CACHE/current"
    say "cached image $image (rebuild: bash guestlab/image.sh --rebuild)"
    sed 's/^/  /' "$image/info.txt"
    exit 0
fi

started="$(now)"
mkdir -p "$images"
work="$(mktemp -d "$GUESTLAB_CACHE/build.XXXXXX")"
chmod 0755 "$work"  # apt-get download writes as the _apt user where it can
# shellcheck disable=SC2317  # called by the trap
cleanup() {
    # debootstrap may leave proc/sys mounted inside the root when it fails.
    awk -v w="$work/" 'index($2, w) == 1 { print $2 }' /proc/mounts | sort -r | while read -r m; do umount -l "$m" || true; done
    rm -rf "$work"
}
trap cleanup EXIT
root="$work/root"

say "building $name in $work"
say "  debootstrap --variant=minbase $codename from $mirror (a few minutes)"
step="$(now)"
if ! debootstrap --variant=minbase --components=main --include="$(IFS=,; printf '%s' "${PACKAGES[*]}")" \
    "$codename" "$root" "$mirror" >"$work/debootstrap.log" 2>&1; then
    tail -n 30 "$work/debootstrap.log" >&2
    [ -f "$root/debootstrap/debootstrap.log" ] && tail -n 30 "$root/debootstrap/debootstrap.log" >&2
    die "debootstrap failed (log above)"
fi
say "  root filesystem in $(since "$step")s"

say "  apt-get download $kernel_pkg=$kernel_version busybox-static=$busybox_version"
mkdir -p "$work/debs"
chown _apt "$work/debs" 2>/dev/null || true
(cd "$work/debs" && apt-get download -q "$kernel_pkg=$kernel_version" "busybox-static=$busybox_version" >/dev/null)
dpkg-deb -x "$work/debs/${kernel_pkg}_"*.deb "$work/kernel"
dpkg-deb -x "$work/debs/busybox-static_"*.deb "$work/busybox"
kver="$(ls "$work/kernel/lib/modules")"
[ -f "$work/kernel/boot/vmlinuz-$kver" ] || die "no vmlinuz-$kver in $kernel_pkg"

# Modules: the kept directories, without the dropped ones, then depmod inside the root.
modules="$root/lib/modules/$kver"
mkdir -p "$modules/kernel"
cp "$work/kernel/lib/modules/$kver"/modules.* "$modules/"
for d in "${MODULE_DIRS[@]}"; do
    if [ -d "$work/kernel/lib/modules/$kver/kernel/$d" ]; then
        mkdir -p "$modules/kernel/$(dirname "$d")"
        cp -a "$work/kernel/lib/modules/$kver/kernel/$d" "$modules/kernel/$(dirname "$d")/"
    fi
done
for d in "${MODULE_DROP[@]}"; do rm -rf "${modules:?}/kernel/$d"; done
chroot "$root" depmod -a "$kver"

# The guest's own configuration (its identity comes from the kernel command line at boot): its boot
# steps as two systemd units, enabled as `systemctl enable` would (links), and sshd enabled.
install -m 0755 "$GUESTLAB_DIR/files/guest-init" "$root/sbin/cnmgl-init"
units="$root/etc/systemd/system"
install -m 0644 "$GUESTLAB_DIR/files/cnmgl-init.service" "$GUESTLAB_DIR/files/cnmgl-ready.service" "$units/"
mkdir -p "$units/multi-user.target.wants" "$units/network-online.target.wants"
ln -sfn ../cnmgl-init.service "$units/multi-user.target.wants/cnmgl-init.service"
ln -sfn ../cnmgl-init.service "$units/network-online.target.wants/cnmgl-init.service"
ln -sfn ../cnmgl-ready.service "$units/multi-user.target.wants/cnmgl-ready.service"
ln -sfn /lib/systemd/system/ssh.service "$units/multi-user.target.wants/ssh.service"
# frr's package enables frr.service: disabled here (no zebra in the other proofs' guests, no cost at boot); the
# cnm_overlay role enables and starts it for control_plane: evpn, as on a host where the package comes with the role.
rm -f "$units/multi-user.target.wants/frr.service"
# Under emulation watchfrr's first start of the daemons and its `vtysh -b` (the configuration) take longer than its
# default 20 s restart timeout: it killed them and bgpd ran without its configuration. 120 s, as for a slow host.
sed -i 's/^#watchfrr_options=""$/watchfrr_options="-T 120"/' "$root/etc/frr/daemons"
grep -q '^watchfrr_options="-T 120"$' "$root/etc/frr/daemons" || die "cannot set watchfrr_options in /etc/frr/daemons"
for unit in "${MASKED[@]}"; do ln -sfn /dev/null "$units/$unit"; done
cat >"$root/etc/ssh/sshd_config.d/cnm-guestlab.conf" <<'CONF'
# The guest lab: root by the lab's key only, one host key made at boot (guestlab/files/guest-init setup).
HostKey /etc/ssh/ssh_host_ed25519_key
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
UseDNS no
CONF
rm -f "$root"/etc/ssh/ssh_host_*
: >"$root/etc/machine-id"
rm -f "$root/var/lib/dbus/machine-id"
: >"$root/etc/resolv.conf"
echo cnmgl >"$root/etc/hostname"
rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/* "$root/debootstrap"

# shellcheck disable=SC2016  # dpkg-query's format fields
guest_versions="$(chroot "$root" dpkg-query -W -f '${Package}=${Version}\n' python3 iproute2 nftables openssh-server tcpdump frr | tr '\n' ' ')"
root_mb="$(du -sm "$root" | cut -f1)"

# The root disk: an ext4 image made from the directory (no loop mount), sparse, with room to
# spare; each guest writes to its own qcow2 overlay over it.
say "  rootfs.raw from $root_mb MB of files"
disk_mb=$((root_mb * 5 / 4 + 512))
mkfs.ext4 -q -F -L cnmgl-root -O ^has_journal -E root_owner=0:0 -d "$root" "$work/rootfs.raw" "${disk_mb}M"

# The initramfs: busybox, the modules that mount the root disk (in modprobe's load order), /init.
initrd="$work/initrd"
mkdir -p "$initrd"/{bin,dev,proc,sys,newroot,lib/modules}
cp "$work/busybox/bin/busybox" "$initrd/bin/busybox"
for applet in sh mount umount insmod sleep switch_root poweroff; do ln -s busybox "$initrd/bin/$applet"; done
install -m 0755 "$GUESTLAB_DIR/files/initramfs-init" "$initrd/init"
: >"$initrd/lib/modules/load-order"
for m in "${INITRAMFS_MODULES[@]}"; do
    chroot "$root" modprobe -S "$kver" --show-depends "$m" | awk '$1 == "insmod" { print $2 }'
done | awk '!seen[$0]++' | while read -r ko; do
    cp "$root$ko" "$initrd/lib/modules/"
    basename "$ko" >>"$initrd/lib/modules/load-order"
done
(cd "$initrd" && find . | cpio -o -H newc -R 0:0 --quiet) | gzip -9 >"$work/initrd.img"

cp "$work/kernel/boot/vmlinuz-$kver" "$work/vmlinuz"
{
    echo "name: $name"
    echo "built: $(date -u +%Y-%m-%dT%H:%M:%SZ) in $(since "$started")s"
    echo "release: Debian $codename from $mirror"
    echo "kernel: $kernel_pkg $kernel_version ($kver)"
    echo "packages: $guest_versions"
    echo "initramfs modules: $(tr '\n' ' ' <"$initrd/lib/modules/load-order")"
    echo "sizes: root files ${root_mb} MB, rootfs.raw ${disk_mb} MB ($(du -m "$work/rootfs.raw" | cut -f1) MB allocated)," \
        "vmlinuz $(du -k "$work/vmlinuz" | cut -f1) KB, initrd.img $(du -k "$work/initrd.img" | cut -f1) KB"
} >"$work/info.txt"

rm -rf "$image"
mkdir -p "$image"
mv "$work/vmlinuz" "$work/initrd.img" "$work/rootfs.raw" "$work/info.txt" "$image/"
chmod 0444 "$image/rootfs.raw"
touch "$image/complete"
ln -sfn "images/$name" "$GUESTLAB_CACHE/current"
# Older images of other recipes take a gigabyte each: keep only this one (guests running from one
# keep their open file; labs started from now on use this one).
for old in "$images"/*; do
    if [ "$old" != "$image" ] && [ -f "$old/complete" ]; then
        say "  removing the older image $old"
        rm -rf "$old"
    fi
done
say "built image $image in $(since "$started")s"
sed 's/^/  /' "$image/info.txt"
