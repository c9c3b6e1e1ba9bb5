"""guests.running: the one view of running guests (qemu and lxc), read fresh from status XML."""
import os

import pytest

from nvhooks import paths
from nvhooks.guests import running

STATUS = """<domstatus state='running' pid='1'><domain type='qemu'><name>{name}</name><devices>
<interface type='bridge'><mac address={quote}{mac}{quote}/><target dev='vnet{n}'/></interface>
</devices></domain></domstatus>"""


@pytest.fixture
def status(tmp_path, monkeypatch):
    monkeypatch.setenv("NETVIRT_HOOKS_ROOT", str(tmp_path))

    def write(name, mac, quote="'", driver_dir=None):
        folder = driver_dir or paths.qemu_status_dir()
        os.makedirs(folder, exist_ok=True)
        with open(os.path.join(folder, f"{name}.xml"), "w", encoding="utf-8") as handle:
            handle.write(STATUS.format(name=name, mac=mac, quote=quote, n=len(name)))
    return write


def test_running_mac_found_in_any_case_and_quote(status):
    status("web1", "52:54:00:AA:bb:01")
    status("web2", "52:54:00:aa:bb:02", quote='"')
    assert running.has_mac("52:54:00:aa:bb:01")
    assert running.has_mac("52:54:00:AA:BB:02")
    assert not running.has_mac("52:54:00:aa:bb:03")


def test_lxc_guests_count_and_no_state_means_none(status):
    assert not running.has_mac("52:54:00:aa:bb:04")
    status("ct1", "52:54:00:aa:bb:04", driver_dir=paths.lxc_status_dir())
    assert running.has_mac("52:54:00:aa:bb:04")
