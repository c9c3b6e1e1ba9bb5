"""Helpers for tests/libvirt/test_fault_suite.py (issue #11's fault suite); holds no tests.

Rows: every case records (case, expected, outcome, seconds); the table is
printed at the end of the module and written to build/results/fault-suite.md.
Hook calls: the real installed entry program (/etc/libvirt/hooks/qemu, the
installed core under /usr/lib/netvirt-hooks), run as libvirt runs it: four
arguments, the domain XML on stdin; NETVIRT_HOOKS_ROOT points it at a scratch
tree (conf, policy, scripts, locks, logs) while tc and ifbs are the host's.
"""
import contextlib
import os
import subprocess
import time

ENTRY = "/etc/libvirt/hooks/qemu"
COMMAND = "/usr/local/sbin/netvirt-hooks"
NS = "https://github.com/netvirt/libvirt_hooks/xmlns/policy/1"


class Row:
    def __init__(self, case, expected):
        self.case, self.expected = case, expected
        self.outcome, self.ok, self.seconds = "", True, 0.0


class Suite:
    """The shared collector of the module's rows."""

    def __init__(self):
        self.rows = []

    @contextlib.contextmanager
    def case(self, name, expected):
        row = Row(name, expected)
        start = time.monotonic()
        try:
            yield row
        except BaseException as err:  # noqa: B036  # pylint: disable=broad-except
            # record the failure in the table, then re-raise it
            first = (str(err).strip().splitlines() or [type(err).__name__])[0]
            row.ok, row.outcome = False, f"FAIL: {first[:160]}" + (f" (after: {row.outcome})" if row.outcome else "")
            raise
        finally:
            row.seconds = time.monotonic() - start
            self.rows.append(row)

    def table(self):
        lines = ["| # | case | expected | outcome | time (s) |", "| --- | --- | --- | --- | --- |"]
        for i, r in enumerate(self.rows, 1):
            cells = [str(i), r.case, r.expected, ("" if r.ok else "**") + r.outcome + ("" if r.ok else "**"),
                     f"{r.seconds:.2f}"]
            lines.append("| " + " | ".join(c.replace("|", "\\|").replace("\n", " ") for c in cells) + " |")
        failed = sum(not r.ok for r in self.rows)
        lines.append("")
        lines.append(f"{len(self.rows)} cases, {failed} failed, {sum(r.seconds for r in self.rows):.1f} s in cases")
        return "\n".join(lines) + "\n"


class Call:
    def __init__(self, rc, stdout, stderr, seconds):
        self.rc, self.stdout, self.stderr, self.seconds = rc, stdout, stderr, seconds

    @property
    def lines(self):
        return [line for line in self.stderr.splitlines() if line.strip()]

    def one_line(self):
        """The one clear line on stderr (what libvirt shows); asserts there is exactly one."""
        assert len(self.lines) == 1, f"expected one stderr line, got {self.lines!r}"
        return self.lines[0]

    def __repr__(self):
        return f"rc={self.rc} in {self.seconds:.2f}s stderr={self.stderr.strip()[:400]!r}"


def clean_env(root=None, **extra):
    env = {k: v for k, v in os.environ.items() if not k.startswith("NETVIRT_")}
    if root is not None:
        env["NETVIRT_HOOKS_ROOT"] = str(root)
    env.update({k: str(v) for k, v in extra.items()})
    return env


def hook(root, guest, op, subop, xml=b"", env=None, timeout=120, preexec_fn=None, argv0=ENTRY):
    """Run the entry program for one qemu event; the subprocess timeout is far above any budget."""
    if isinstance(xml, str):
        xml = xml.encode()
    start = time.monotonic()
    proc = subprocess.run([argv0, guest, op, subop, "-"], input=xml, capture_output=True,
                          env=env or clean_env(root), timeout=timeout, preexec_fn=preexec_fn, check=False)
    return Call(proc.returncode, proc.stdout, proc.stderr.decode("utf-8", "replace"), time.monotonic() - start)


def command(root, *args, timeout=120):
    start = time.monotonic()
    proc = subprocess.run([COMMAND, *args], capture_output=True, text=True, env=clean_env(root),
                          timeout=timeout, check=False)
    return Call(proc.returncode, proc.stdout, proc.stderr, time.monotonic() - start)


def sh(*argv, check=True):
    proc = subprocess.run([str(a) for a in argv], capture_output=True, text=True, timeout=60, check=False)
    if check and proc.returncode:
        raise AssertionError(f"{' '.join(map(str, argv))}: rc={proc.returncode} {proc.stderr.strip()}")
    return proc.stdout


def ifbs():
    """{name: alias} of every ifb in the host namespace."""
    out = {}
    for line in sh("ip", "-o", "link", "show", "type", "ifb").splitlines():
        name = line.split(":")[1].strip().split("@")[0]
        out[name] = line.split("alias ", 1)[1].strip() if "alias " in line else ""
    return out


def ours(names):
    """The ifbs whose alias names one of ``names`` (taps, groups)."""
    return {n: a for n, a in ifbs().items() if any(x in a.split() for x in names)}


def group_alive(pgid):
    """Live (non-zombie) members of process group ``pgid`` (init here may not reap zombies)."""
    alive = []
    for name in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{name}/stat", "rb") as handle:
                fields = handle.read().rsplit(b")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if len(fields) > 2 and int(fields[2]) == pgid and fields[0] not in (b"Z", b"X"):
            alive.append(int(name))
    return alive


def errors_of(root, guest):
    """{log file: [ERROR lines]} of every log of ``guest`` in the scratch log folder that has one."""
    folder = os.path.join(str(root), "var/log/libvirt/hooks")
    out = {}
    for name in sorted(os.listdir(folder)) if os.path.isdir(folder) else []:
        if f"_{guest}_" in name:
            lines = [line for line in log_text(root, name).splitlines() if " ERROR " in line]
            if lines:
                out[name] = lines
    return out


def mac_of(tap):
    """A stable MAC for one of our taps (nvtf + 6 hex)."""
    h = tap[-6:]
    return f"52:54:00:{h[0:2]}:{h[2:4]}:{h[4:6]}"


def root_qdisc(dev):
    out = sh("tc", "qdisc", "show", "dev", dev, "root", check=False).split()
    return out[1] if len(out) > 1 else "none"


def untouched(dev):
    """No tc of ours on ``dev``: root qdisc is the kernel's default and no ingress qdisc."""
    qdiscs = sh("tc", "qdisc", "show", "dev", dev)
    return "htb" not in qdiscs and "ingress" not in qdiscs and "clsact" not in qdiscs


def log_text(root, name):
    folder = os.path.join(str(root), "var/log/libvirt/hooks")
    with open(os.path.join(folder, name), encoding="utf-8", errors="replace") as handle:
        return handle.read()


def error_lines(root, name):
    return [line for line in log_text(root, name).splitlines() if " ERROR " in line]


def iface(tap, mac=None, extra=""):
    mac_xml = f"<mac address='{mac}'/>" if mac else ""
    return f"<interface type='ethernet'>{mac_xml}<target dev='{tap}'/><model type='virtio'/>{extra}</interface>"


def metadata(body):
    return f"<nv:policy xmlns:nv='{NS}'>{body}</nv:policy>"
