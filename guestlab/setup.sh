#!/usr/bin/env bash
# Install what the guest lab needs on this machine (Debian, as root): bash guestlab/setup.sh
#   qemu-system-x86 (the emulator), qemu-utils (qemu-img), debootstrap, cpio (the initramfs),
#   socat (the SSH path into the lab namespace), e2fsprogs (mkfs.ext4 -d), tcpdump (captures).
# Without recommends (no graphics stack). Takes under a second when everything is in place.
set -euo pipefail
# shellcheck source=guestlab/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

[ "$(id -u)" -eq 0 ] || die "setup.sh needs root (apt-get)"
declare -A package_of=([qemu-system-x86_64]=qemu-system-x86 [qemu-img]=qemu-utils [debootstrap]=debootstrap
    [cpio]=cpio [socat]=socat [mkfs.ext4]=e2fsprogs [tcpdump]=tcpdump)
missing=()
for tool in "${!package_of[@]}"; do
    command -v "$tool" >/dev/null || missing+=("${package_of[$tool]}")
done
if [ "${#missing[@]}" -eq 0 ]; then
    say "host tools present: $(qemu-system-x86_64 --version | head -n1)"
    exit 0
fi
say "installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -q >/dev/null || say "apt-get update failed; trying with the package lists there are"
apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null
for tool in "${!package_of[@]}"; do
    command -v "$tool" >/dev/null || die "$tool still missing after installing ${package_of[$tool]}"
done
say "installed ${missing[*]}: $(qemu-system-x86_64 --version | head -n1)"
