#!/usr/bin/env bash
# Idempotent machine + venv setup for every lane. Fast when already done.
. "$(dirname "$0")/lib.sh"
need_root
export DEBIAN_FRONTEND=noninteractive

APT_PKGS=(make git tar util-linux procps kmod iproute2 ca-certificates
    python3 python3-venv python3-pip python3-pytest python3-pytest-timeout python3-pyroute2
    libvirt-daemon-system libvirt-clients qemu-system-x86 ovmf seabios ipxe-qemu
    linux-image-amd64 busybox-static openvswitch-switch iperf3 shellcheck)
# journal tests run a private systemd-journald (tests/libvirt... test_journal); python3-systemd is one backend
APT_PKGS+=(systemd python3-systemd logrotate)
# metrics: the exposition library, node_exporter scraping our textfile, ping in traffic tests
APT_PKGS+=(python3-prometheus-client prometheus-node-exporter iputils-ping)
APT_PKGS+=(python3-libvirt)     # netvirt-hooks agent (issue #13)

have=$(dpkg-query -W -f='${Package} ${db:Status-Status}\n' "${APT_PKGS[@]}" 2>/dev/null \
       | awk '$2=="installed"{print $1}' | sort || true)
missing=$(printf '%s\n' "${APT_PKGS[@]}" | sort | comm -13 <(echo "$have") -)
if [ -n "$missing" ]; then
    say "apt: installing" "${missing//$'\n'/ }"
    apt-get update -q
    # one call: fewer initramfs rebuilds
    apt-get install -y -q --no-install-recommends "${APT_PKGS[@]}"
else
    echo "apt: all packages present"
fi

REQ=$REPO/tests/requirements.txt
stamp=$VENV/.nvt-stamp
want=$(sha256sum <"$REQ" | cut -c1-16)
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
    # install into the existing venv when it works: others may be using it
    if ! "$VENV/bin/python" -m pip --version >/dev/null 2>&1; then
        say "venv: creating $VENV"
        rm -rf "$VENV"
        "$DEBPY" -m venv "$VENV"
        "$VENV/bin/pip" install -q --upgrade pip
    fi
    say "venv: installing tests/requirements.txt"
    "$VENV/bin/pip" install -q -r "$REQ"
    echo "$want" >"$stamp"
else
    echo "venv: up to date ($VENV)"
fi

# ansible-test downloads a get-pip script we cannot reach; give it a stand-in
# named after the pip version this ansible-core asks for.
pipver=$("$VENV/bin/python" - <<'PY'
import types
from ansible_test._internal.python_requirements import get_venv_packages
print(get_venv_packages(types.SimpleNamespace(version="3.11"))["pip"])
PY
) || die "cannot read pip version from ansible-test"
cache=${HOME:-/root}/.ansible/test/cache
mkdir -p "$cache"
install -m 0644 "$REPO/tests/lanes/get_pip_standin.py" "$cache/get_pip_${pipver//./_}.py"
echo "ansible-test: get-pip stand-in for pip $pipver in $cache"

# the oldest ansible-core meta/runtime.yml claims, on Debian's python3
# (tests/libvirt/test_ansible_oldest.py); the libvirt11 lane's chroot has the newest
OLDEST=$(sed -n 's/^requires_ansible: *">=\([0-9]*\.[0-9]*\).*/\1/p' "$REPO/meta/runtime.yml")
ANSIBLE_OLDEST_VENV=$BUILD/venv-ansible-oldest
if [ "$(cat "$ANSIBLE_OLDEST_VENV/.nvt-stamp" 2>/dev/null)" != "$OLDEST" ]; then
    say "venv: ansible-core $OLDEST in $ANSIBLE_OLDEST_VENV"
    rm -rf "$ANSIBLE_OLDEST_VENV"
    "$DEBPY" -m venv "$ANSIBLE_OLDEST_VENV"
    "$ANSIBLE_OLDEST_VENV/bin/pip" install -q "ansible-core>=$OLDEST,<${OLDEST%.*}.$((${OLDEST#*.} + 1))"
    echo "$OLDEST" >"$ANSIBLE_OLDEST_VENV/.nvt-stamp"
fi
command -v mmdebstrap >/dev/null || apt-get install -y -q mmdebstrap   # the libvirt11 lane's chroot

# Debian kernel for the real-kernel lane
KVER=$(debian_kver)
echo "realkernel: kernel $KVER"
echo "setup: done"

