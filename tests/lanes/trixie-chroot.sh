#!/usr/bin/env bash
# Debian 13 (trixie) chroot for the libvirt11 lane: libvirt 11.3, Python 3.13,
# python3-pyroute2 0.8, python3-libvirt and python3-prometheus-client
# (what the hooks role installs on a hypervisor), and a venv with the newest ansible-core.
# Built with mmdebstrap from the apt mirror this machine uses; cached under
# $NVT_CHROOT_CACHE, keyed by a hash of this file (package list, hooks), so a
# second run on one machine reuses it. Prints the chroot's path on stdout.
set -euo pipefail
CACHE=${NVT_CHROOT_CACHE:-/var/cache/netvirt-tests}
PKGS=libvirt-daemon-system,libvirt-clients,qemu-system-x86,qemu-utils,python3,python3-venv,python3-pip,python3-pyroute2,python3-libvirt,python3-prometheus-client,python3-pytest,python3-yaml,python3-jinja2,iproute2,procps,util-linux,ca-certificates,git
# the hook's pyroute2: Debian 13 ships 0.7.7; 0.8 over it (/usr/local) for the Python 3.13 + 0.8 runtime
HOOK_PIP_PKGS='"pyroute2>=0.8,<0.9"'
# newest ansible-core (needs Python >= 3.12) and pytest-timeout (the lanes pass --timeout)
PIP_PKGS='"ansible-core>=2.21,<2.22" pytest-timeout'
# rebuilt when what goes in changes (packages, pip packages, the hooks below)
key=$(grep -vE '^\s*(#|$)' "$0" | sha256sum | cut -c1-12)
root=$CACHE/trixie-$key
if [ -f "$root/.nvt-complete" ]; then echo "$root"; exit 0; fi
# the mirror the host's apt uses; pip goes through the host's CA bundle and pip.conf
mirror=$(sed -n 's/^URIs: *//p' /etc/apt/sources.list.d/debian.sources 2>/dev/null | head -1)
mirror=${mirror:-http://deb.debian.org/debian}
command -v mmdebstrap >/dev/null || apt-get install -y -q mmdebstrap >&2
mkdir -p "$CACHE"
rm -rf "${CACHE:?}"/trixie-* # older keys: the package list changed
t0=$SECONDS
# no systemd in the chroot: daemons are started by hand (libvirtd -d)
# shellcheck disable=SC2016  # mmdebstrap's hooks expand their own "$1"
mmdebstrap --variant=apt --include="$PKGS" \
    --customize-hook='rm -f "$1"/etc/libvirt/qemu/networks/autostart/*.xml' \
    --customize-hook='cp /etc/resolv.conf "$1"/etc/resolv.conf' \
    --customize-hook='if [ -f /etc/pip.conf ]; then cp /etc/pip.conf "$1"/etc/pip.conf; fi' \
    --customize-hook='cp -L /etc/ssl/certs/ca-certificates.crt "$1"/etc/ssl/certs/ca-certificates.crt' \
    --customize-hook="chroot \"\$1\" python3 -m pip install -q --break-system-packages --ignore-installed $HOOK_PIP_PKGS" \
    --customize-hook="chroot \"\$1\" sh -c 'python3 -m venv --system-site-packages /opt/nvt-build/venv && /opt/nvt-build/venv/bin/pip install -q $PIP_PKGS'" \
    trixie "$root.tmp" "$mirror" >&2
touch "$root.tmp/.nvt-complete"
mv "$root.tmp" "$root"
echo "trixie chroot built in $((SECONDS - t0))s" >&2
echo "$root"
