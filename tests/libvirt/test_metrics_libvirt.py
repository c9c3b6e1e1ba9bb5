"""Metrics of a real shaped guest: `netvirt-hooks metrics`, node_exporter's textfile collector, serve().

The guest is shaped by `netvirt-hooks apply` with a host policy given with
--policy (as in test_cli_libvirt.py: whatever hooks other tests installed
cannot decide the outcome). Debian's prometheus-node-exporter, started here
on a free localhost port with only its textfile collector, scrapes the file
`netvirt-hooks metrics --textfile` wrote; then the core's own serve() is
scraped the same way.
"""
import json
import os
import socket
import subprocess
import time
import urllib.error
import urllib.request

import pytest

from conftest import bridge_iface, ethernet_iface, uid

PLUGINS = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
                       "plugins", "module_utils")
PY = "/usr/bin/python3"
NODE_EXPORTER = "/usr/bin/prometheus-node-exporter"
MAC0, MAC1 = "52:54:00:c3:00:01", "52:54:00:c3:00:02"


def nvh(*args, policy):
    code = "import sys; sys.path.insert(0, sys.argv.pop(1)); from nvhooks.cli import main; sys.exit(main())"
    proc = subprocess.run([PY, "-c", code, PLUGINS, "--policy", str(policy), *args],
                          capture_output=True, text=True, timeout=120, check=False)
    return proc.returncode, proc.stdout, proc.stderr


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def get(url, timeout=10.0):
    """GET url -> (status, text); polls while nothing listens yet (bounded)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=5) as answer:
                return answer.status, answer.read().decode("utf-8")
        except urllib.error.HTTPError as err:
            return err.code, ""
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def series(text, guest):
    """{(metric, dev, direction): labels} of our guest's samples in an exposition."""
    from prometheus_client.parser import text_string_to_metric_families
    out = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.labels.get("guest") == guest:
                out[(sample.name, sample.labels["dev"], sample.labels["direction"])] = (sample.labels, sample.value)
    return out


@pytest.fixture
def node_exporter(tmp_path):
    """Factory: start node_exporter (textfile collector only) on a folder -> its /metrics URL."""
    procs = []

    def start(folder):
        if not os.access(NODE_EXPORTER, os.X_OK):
            pytest.fail(f"{NODE_EXPORTER} missing: apt-get install prometheus-node-exporter (tests/lanes/setup.sh)",
                        pytrace=False)
        port = free_port()
        log = open(tmp_path / "node_exporter.log", "wb")  # pylint: disable=consider-using-with
        procs.append((subprocess.Popen([NODE_EXPORTER, "--collector.disable-defaults", "--collector.textfile",
                                        f"--collector.textfile.directory={folder}",
                                        f"--web.listen-address=127.0.0.1:{port}"],
                                       stdout=log, stderr=subprocess.STDOUT), log))
        return f"http://127.0.0.1:{port}/metrics"

    yield start
    for proc, log in procs:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


def test_metrics_of_a_real_guest_scraped_by_node_exporter_and_serve(
        guest, host_bridge, tmp_path, virsh, node_exporter):
    br = host_bridge()
    tap0, tap1 = "nvtt" + uid(), "nvtt" + uid()
    g = guest(interfaces=[bridge_iface(br, target=tap0, mac=MAC0), ethernet_iface(target=tap1, mac=MAC1)])
    domain_uuid = virsh("domuuid", g.name).stdout.strip()
    policy = tmp_path / "policy.json"
    policy.write_text(json.dumps({"version": 1, "groups": {"nvtm": {"outbound": {"ceiling": "20mbit"}}}, "rules": [
        {"match": {"guest": g.name, "index": 0}, "inbound": {"average": "10mbit", "peak": "20mbit"}},
        {"match": {"guest": g.name, "dev": tap1}, "group": "nvtm"},
    ]}))
    code, _out, err = nvh("apply", g.name, policy=policy)
    assert code == 0, err

    # the command, without any agent
    code, text, err = nvh("metrics", policy=policy)
    assert code == 0, err
    ours = series(text, g.name)
    labels, rate = ours[("netvirt_port_rate_bytes_per_second", tap0, "inbound")]
    assert labels == {"guest": g.name, "uuid": domain_uuid, "dev": tap0, "mac": MAC0, "index": "0",
                      "direction": "inbound", "group": ""}
    assert rate == 1_250_000 and ours[("netvirt_port_ceil_bytes_per_second", tap0, "inbound")][1] == 2_500_000
    labels, _value = ours[("netvirt_port_bytes_total", tap1, "outbound")]
    assert (labels["mac"], labels["group"], labels["index"]) == (MAC1, "nvtm", "1")
    assert ours[("netvirt_port_shaped", tap1, "outbound")][1] == 1.0
    assert ("netvirt_port_bytes_total", tap0, "outbound") not in ours     # not shaped that way: no series
    code, out, err = nvh("--json", "metrics", policy=policy)
    assert code == 0, err
    mine = [p for p in json.loads(out)["ports"] if p["guest"] == g.name]
    assert sorted((p["dev"], p["direction"]) for p in mine) == sorted([(tap0, "inbound"), (tap1, "outbound")])

    # node_exporter's textfile collector really reads our file, over HTTP on localhost
    folder = tmp_path / "textfile"
    folder.mkdir()
    code, _out, err = nvh("metrics", "--textfile", str(folder / "netvirt.prom"), policy=policy)
    assert code == 0, err
    assert oct((folder / "netvirt.prom").stat().st_mode & 0o777) == "0o644"
    status, scraped = get(node_exporter(folder))
    assert status == 200
    assert "node_textfile_scrape_error 0" in scraped
    got = series(scraped, g.name)
    assert got[("netvirt_port_rate_bytes_per_second", tap0, "inbound")] == ours[
        ("netvirt_port_rate_bytes_per_second", tap0, "inbound")]
    assert got[("netvirt_port_shaped", tap1, "outbound")][1] == 1.0

    # serve(): the agent's HTTP endpoint, bound to localhost
    from nvhooks.metrics import collect, export
    from nvhooks.policy import model
    host = model.load_host_policy(str(policy))
    server = export.serve("127.0.0.1", 0, source=lambda: collect.snapshot(host))
    try:
        assert server.address == "127.0.0.1"
        status, served = get(f"http://127.0.0.1:{server.port}/metrics")
        assert status == 200
        assert series(served, g.name)[("netvirt_port_rate_bytes_per_second", tap0, "inbound")][1] == 1_250_000
        assert get(f"http://127.0.0.1:{server.port}/other")[0] == 404
    finally:
        server.shutdown()
    nvh("teardown", g.name, policy=policy)
