#!/usr/bin/env bash
# Prepare a checkout for development and tests (idempotent; fast when already done):
#   1. the Debian packages the lab and the integration tests use (apt, as root, only if missing);
#   2. .venv at the repo root, on Python 3.12 when one is found (else python3 >= 3.11,
#      with which pip resolves ansible-core 2.19 from requirements-dev.txt's range);
#   3. requirements-dev.txt installed into .venv (skipped while the stamp's hash is current);
#   4. the link .venv/collections/ansible_collections/cnm/network -> the repo root
#      (ansible.cfg's collections_path), so playbooks find the collection in the checkout;
#   5. Debian 13's aardvark-dns beside Debian 12's (.venv/aardvark-dns-trixie/aardvark-dns, from the Debian archive
#      through apt, signature checked): the resolver tests run against both.
# Usage: bash scripts/setup.sh        (from any directory)
# Environment: CNM_PYTHON=/path/to/python forces the interpreter used to create .venv.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)"
cd "$ROOT"

say() { printf 'setup: %s\n' "$*"; }

# --- 1. Debian packages ----------------------------------------------------------------
# The lab's tools (conntrack: the tests count conntrack entries with it), plus shellcheck: without it ansible-test's "shellcheck" sanity test
# only warns and checks nothing (it covers scripts/*.sh). docker.io, podman and busybox-static:
# tests/integration/test_containers.py starts its own engine in a lab namespace and imports a
# busybox image from a local tarball (about 10 s to install both runtimes). frr: the EVPN control plane
# (tests/integration/test_playbooks.py runs zebra and bgpd inside the lab hosts; never in the root namespace).
DEB_PACKAGES=(nftables iproute2 iperf3 containernetworking-plugins socat tcpdump procps iputils-ping
    shellcheck conntrack iptables docker.io podman busybox-static aardvark-dns dnsmasq-base frr graphviz)

deb_installed() {
    [ "$(dpkg-query -W -f='${db:Status-Status}' "$1" 2>/dev/null || true)" = installed ]
}

if command -v dpkg-query >/dev/null 2>&1; then
    missing=()
    for pkg in "${DEB_PACKAGES[@]}"; do
        deb_installed "$pkg" || missing+=("$pkg")
    done
    if [ "${#missing[@]}" -eq 0 ]; then
        say "Debian packages present: ${DEB_PACKAGES[*]}"
    elif [ "$(id -u)" -eq 0 ]; then
        say "installing Debian packages: ${missing[*]}"
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -q
        # Installing docker.io must not start the system's dockerd (docker0, iptables rules on this machine):
        # a policy-rc.d that says no, for the time of the install, where none exists.
        policy=/usr/sbin/policy-rc.d
        ours=
        if [ ! -e "$policy" ]; then
            printf '#!/bin/sh\nexit 101\n' >"$policy" && chmod 755 "$policy" && ours=1
            trap 'rm -f "$policy"' EXIT
        fi
        apt-get install -y -q --no-install-recommends "${missing[@]}"
        if [ -n "$ours" ]; then
            rm -f "$policy"
            trap - EXIT
        fi
    else
        say "WARNING: missing Debian packages (need root to install): ${missing[*]}"
    fi
else
    say "WARNING: no dpkg here; install by hand: ${DEB_PACKAGES[*]}"
fi

# --- 2. .venv ----------------------------------------------------------------------------
py_version_ok() {  # $1 = interpreter, $2 = minimum minor version of Python 3
    "$1" -c "import sys; sys.exit(0 if sys.version_info[:2] >= (3, $2) else 1)" >/dev/null 2>&1
}

find_python() {
    local cand
    if [ -n "${CNM_PYTHON:-}" ]; then
        echo "$CNM_PYTHON"
        return
    fi
    # A pyenv shim named python3.12 exists even when 3.12 is not selected, and then fails:
    # a candidate counts only if it runs and really is 3.12.
    for cand in "$(command -v python3.12 || true)" \
        "${PYENV_ROOT:-$HOME/.pyenv}"/versions/3.12*/bin/python \
        /root/.pyenv/versions/3.12*/bin/python \
        /usr/bin/python3.12 /usr/local/bin/python3.12; do
        if [ -z "$cand" ] || [ ! -x "$cand" ]; then continue; fi
        if "$cand" -c 'import sys, venv; sys.exit(0 if sys.version_info[:2] == (3, 12) else 1)' >/dev/null 2>&1; then
            echo "$cand"
            return
        fi
    done
    if command -v python3 >/dev/null 2>&1 && py_version_ok python3 11; then
        say "NOTE: no Python 3.12 found; using $(python3 --version 2>&1) — pip then resolves ansible-core 2.19" >&2
        command -v python3
        return
    fi
    say "ERROR: need Python 3.12 (or python3 >= 3.11) to create .venv" >&2
    exit 1
}

VENV="$ROOT/.venv"
if [ -x "$VENV/bin/python" ] && "$VENV/bin/python" -c 'import sys' >/dev/null 2>&1; then
    say ".venv present: $("$VENV/bin/python" --version 2>&1)"
else
    PY="$(find_python)"
    say "creating .venv with $PY ($("$PY" --version 2>&1))"
    rm -rf "$VENV"
    "$PY" -m venv "$VENV"
fi

# --- 3. requirements-dev.txt -------------------------------------------------------------
STAMP="$VENV/.requirements-dev.sha256"
want="$( (sha256sum requirements-dev.txt; "$VENV/bin/python" --version) 2>&1 | sha256sum | cut -d' ' -f1)"
if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$want" ]; then
    say "requirements-dev.txt already installed (stamp current)"
else
    say "installing requirements-dev.txt into .venv"
    "$VENV/bin/python" -m pip install --disable-pip-version-check -q --upgrade pip
    "$VENV/bin/python" -m pip install --disable-pip-version-check -q -r requirements-dev.txt
    echo "$want" >"$STAMP"
fi

# --- 4. collection link ------------------------------------------------------------------
LINK="$VENV/collections/ansible_collections/cnm/network"
if [ "$(readlink "$LINK" 2>/dev/null || true)" = "$ROOT" ]; then
    say "collection link present: $LINK -> $ROOT"
else
    say "linking $LINK -> $ROOT"
    mkdir -p "$(dirname "$LINK")"
    rm -rf "$LINK"
    ln -s "$ROOT" "$LINK"
fi

# --- 5. Debian 13's aardvark-dns -----------------------------------------------------------
# aardvark-dns 1.4 (Debian 12) and 1.14 (Debian 13) reload differently and only 1.11+ answers PTR and TCP: the
# tests run both. apt fetches the package from a private list of trixie's index (nothing is installed).
NEWER="$VENV/aardvark-dns-trixie"
if [ -x "$NEWER/aardvark-dns" ]; then
    say "Debian 13's aardvark-dns present: $("$NEWER/aardvark-dns" --version)"
elif command -v apt-get >/dev/null 2>&1; then
    say "fetching Debian 13's aardvark-dns into $NEWER"
    work="$(mktemp -d)"
    mkdir -p "$work/parts" "$work/lists/partial" "$work/cache/archives/partial"
    printf 'Types: deb\nURIs: http://deb.debian.org/debian\nSuites: trixie\nComponents: main\nSigned-By: %s\n' \
        /usr/share/keyrings/debian-archive-keyring.gpg >"$work/parts/trixie.sources"
    apt_private=(-q -o Dir::Etc::SourceList=/dev/null -o "Dir::Etc::SourceParts=$work/parts"
        -o "Dir::State::Lists=$work/lists" -o "Dir::Cache=$work/cache" -o Debug::NoLocking=1
        -o APT::Sandbox::User=root -o Acquire::Languages=none)
    (cd "$work" && apt-get "${apt_private[@]}" update >/dev/null && apt-get "${apt_private[@]}" download aardvark-dns/trixie)
    mkdir -p "$work/root" "$NEWER"
    dpkg-deb -x "$work"/aardvark-dns_*.deb "$work/root"
    install -m 755 "$work/root/usr/lib/podman/aardvark-dns" "$NEWER/aardvark-dns"
    rm -rf "$work"
    say "Debian 13's aardvark-dns: $("$NEWER/aardvark-dns" --version)"
fi

say "done: $("$VENV/bin/ansible" --version 2>/dev/null | head -n1)"
