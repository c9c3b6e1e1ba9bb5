"""Accuracy: achieved / configured wire rate within 0.95..1.03 (TCP, UDP, both directions).

A "guest" netns sits behind a veth whose other end (the "tap") lives in the
"uplink" netns, where the shaping is applied exactly as on a hypervisor.
iperf3 runs 6 s; the receiver's goodput between seconds 2 and 5 is turned
into a wire rate (HTB's rate is a link-layer rate): each 1448-byte TCP
segment travels in a 1514-byte frame, each 1400-byte UDP datagram in a
1442-byte frame. (Device counters would read ~4% low for TCP: with GSO a
device counts one header per super-packet while HTB rightly charges every
segment's headers.)
"""
import json
import shutil
import subprocess
import time

import pytest

from nvhooks.shaping import caps as capsmod
from nvhooks.shaping import apply as tcapply, plan as tcplan
from nvhooks.policy.model import Rate

RATE = 10_000_000
RUN, FROM, TO = 6, 2.0, 5.0

pytestmark = pytest.mark.usefixtures("scratch_root")


@pytest.fixture(scope="module")
def iperf3():
    path = shutil.which("iperf3")
    if path is None:
        pytest.fail("iperf3 is required for the accuracy test (apt-get install iperf3)", pytrace=False)
    return path


@pytest.fixture
def shaped(netns, veth, nsrun):
    guest, uplink = netns(), netns()
    v = veth(uplink, peer_ns=guest)               # v.name = the tap (uplink side), v.peer = guest's NIC
    nsrun(uplink, "ip", "addr", "add", "10.99.0.1/24", "dev", v.name)
    nsrun(guest, "ip", "addr", "add", "10.99.0.2/24", "dev", v.peer)
    caps = capsmod.probe()
    plan = tcplan.plan_device(v.name, caps, inbound=Rate(average=RATE), outbound=Rate(average=RATE), netns=uplink)
    tcapply.apply(plan, caps)
    yield guest, uplink, v
    tcapply.apply(tcplan.plan_absent(v.name, netns=uplink), caps)


def timer_lateness():
    """Median overshoot of a 1 ms sleep, in ms: HTB sends on hrtimer wake-ups, so late timers mean
    an idle link and a low rate that says nothing about the shaping (seen in a starved TCG VM)."""
    late = []
    for _sample in range(40):
        start = time.monotonic()
        time.sleep(0.001)
        late.append((time.monotonic() - start - 0.001) * 1000)
    return sorted(late)[len(late) // 2]


def measure(nsrun, iperf3, guest, uplink, v, udp, reverse):
    server = subprocess.Popen(["ip", "netns", "exec", uplink, iperf3, "-s", "-1", "-J", "-B", "10.99.0.1"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _attempt in range(50):                       # bounded wait for the listener
            if "10.99.0.1:5201" in nsrun(uplink, "ss", "-ltn").stdout:
                break
            time.sleep(0.1)
        args = ["ip", "netns", "exec", guest, iperf3, "-c", "10.99.0.1", "-t", str(RUN), "-J"]
        if udp:
            args += ["-u", "-b", str(int(RATE * 1.3)), "-l", "1400"]
        args += ["-R", "--get-server-output"] if reverse else ["--get-server-output"]
        client = subprocess.run(args, capture_output=True, text=True, timeout=RUN + 60, check=False)
        out = client.stdout
        assert client.returncode == 0, client.stderr + out
    finally:
        server.kill()
        server.wait(10)
    report = json.loads(out)
    receiver = report if reverse else report["server_output_json"]
    frame, payload = (1442, 1400) if udp else (1514, 1448)
    return _window_rate(receiver) * frame / payload / RATE


def _window_rate(side):
    """bit/s of payload in the intervals between FROM and TO seconds."""
    window = [i["sum"] for i in side["intervals"]
              if i["sum"]["start"] >= FROM - 0.01 and i["sum"]["end"] <= TO + 0.01]
    return sum(i["bytes"] for i in window) * 8 / sum(i["seconds"] for i in window)


@pytest.mark.parametrize("udp", [False, True], ids=["tcp", "udp"])
@pytest.mark.parametrize("reverse", [True, False], ids=["inbound", "outbound"])
def test_rate_accuracy_10mbit(shaped, nsrun, iperf3, udp, reverse):
    guest, uplink, v = shaped
    lateness = timer_lateness()
    if lateness > 2.0:
        pytest.fail(f"timers fire {lateness:.1f} ms late here (median of 1 ms sleeps): this machine/VM is too "
                    f"starved to measure shaping accuracy; the kernel lane on the host measures it", pytrace=False)
    ratio = measure(nsrun, iperf3, guest, uplink, v, udp, reverse)
    print(f"{'udp' if udp else 'tcp'} {'inbound' if reverse else 'outbound'}: achieved/configured wire rate {ratio:.3f}")
    assert 0.95 <= ratio <= 1.03
