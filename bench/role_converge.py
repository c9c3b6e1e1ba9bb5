"""Role converge: what a second site.yml run on a host that is already right costs.

Runs playbooks/site.yml from this checkout against this machine with the
example inventory (as tests/libvirt does: hooks_install_packages false,
ansible_python_interpreter /usr/bin/python3), once to converge, then, in
interleaved rounds so machine load hits both alike:
  reference  a play with fact gathering plus ten ansible.builtin.stat tasks
  converge   site.yml again (the host is already right: nothing should change)
over two connections:
  local      ansible_connection=local
  ssh        ssh to 127.0.0.1 as root with pipelining, through an sshd this
             script starts on a free port with its own host key, client key
             and authorized_keys in a scratch folder (openssh-server is
             installed with apt-get when /usr/sbin/sshd is missing)
Prints medians, converge / reference, and the task counts of a converge:
tasks started, loop items, and the PLAY RECAP's ok / changed / skipped.
Asserts nothing (target: converge <= 2.5x reference).

Changes the machine's hook install (/etc/libvirt/hooks, /usr/lib/netvirt-hooks,
/usr/local/sbin/netvirt-hooks): they are saved first and put back at exit. It
holds /run/nvt-libvirt.lock meanwhile (the libvirt test lane uses the same
paths) unless NVT_LIBVIRT_LOCK_HELD=1.
Run: sudo build/venv/bin/python bench/role_converge.py [-n ROUNDS] [--connections local,ssh]
"""
import argparse
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import libvirt_lock  # noqa: E402  pylint: disable=wrong-import-position

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
VENV_BIN = os.path.join(os.environ.get("NVT_BUILD", os.path.join(REPO, "build")), "venv", "bin")
SAVED = ("/etc/libvirt/hooks", "/usr/lib/netvirt-hooks", "/usr/local/sbin/netvirt-hooks")
SSHD = "/usr/sbin/sshd"
REFERENCE = [{"name": "Reference: facts and ten stat tasks", "hosts": "hypervisors", "become": True,
              "gather_facts": True,
              "tasks": [{"name": "Stat %d" % n, "ansible.builtin.stat": {"path": "/etc/hostname"}}
                        for n in range(10)]}]
RECAP = re.compile(r"^(\S+)\s+:\s+ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)\s+skipped=(\d+)",
                   re.M)


def sh(argv, **kw):
    return subprocess.run(argv, capture_output=True, text=True, check=False, **kw)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Sshd:
    """An sshd of our own on 127.0.0.1:<free port>, root login by a scratch key."""

    def __init__(self, scratch):
        self.dir = os.path.join(scratch, "ssh")
        os.makedirs(self.dir, mode=0o700)
        self.key = os.path.join(self.dir, "id_ed25519")
        self.port = free_port()
        self.proc = None

    def start(self):
        if not os.path.exists(SSHD):
            print("installing openssh-server (apt-get)", flush=True)
            proc = sh(["apt-get", "install", "-y", "-q", "--no-install-recommends", "openssh-server"],
                      env=dict(os.environ, DEBIAN_FRONTEND="noninteractive"))
            if proc.returncode:
                sys.exit("apt-get install openssh-server failed:\n" + proc.stdout + proc.stderr)
        hostkey = os.path.join(self.dir, "host_ed25519")
        for path in (hostkey, self.key):
            proc = sh(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", path])
            if proc.returncode:
                sys.exit("ssh-keygen failed: " + proc.stderr)
        shutil.copy(self.key + ".pub", os.path.join(self.dir, "authorized_keys"))
        os.makedirs("/run/sshd", mode=0o755, exist_ok=True)   # privilege separation folder
        self.proc = subprocess.Popen(
            [SSHD, "-D", "-e", "-f", "/dev/null", "-p", str(self.port), "-o", "ListenAddress=127.0.0.1",
             "-h", hostkey, "-o", "AuthorizedKeysFile=" + os.path.join(self.dir, "authorized_keys"),
             "-o", "PermitRootLogin=prohibit-password", "-o", "StrictModes=no", "-o", "PasswordAuthentication=no",
             "-o", "KbdInteractiveAuthentication=no", "-o", "UsePAM=no", "-o", "MaxStartups=100",
             "-o", "MaxSessions=100", "-o", "Subsystem=sftp internal-sftp", "-o", "PidFile=none"],
            stdout=subprocess.DEVNULL, stderr=open(os.path.join(self.dir, "sshd.log"), "w"))
        deadline = time.monotonic() + 20
        while sh(["ssh", *self.options(), "root@127.0.0.1", "true"]).returncode:
            if time.monotonic() > deadline or self.proc.poll() is not None:
                with open(os.path.join(self.dir, "sshd.log")) as log:
                    sys.exit("sshd on port %d does not let us in:\n%s" % (self.port, log.read()))
            time.sleep(0.2)

    def options(self):
        return ["-p", str(self.port), "-i", self.key, "-o", "IdentitiesOnly=yes", "-o", "BatchMode=yes",
                "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null", "-o", "LogLevel=ERROR"]

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(10)


def inventory(scratch, connection, sshd=None):
    """The example inventory (its group_vars/all/rollout.yml too), localhost over `connection`."""
    inv = os.path.join(scratch, "inventory-" + connection)
    shutil.copytree(os.path.join(REPO, "examples", "inventory"), inv)
    host = {"ansible_python_interpreter": "/usr/bin/python3"}
    if connection == "local":
        host["ansible_connection"] = "local"
    else:
        host.update(ansible_connection="ssh", ansible_host="127.0.0.1", ansible_port=sshd.port, ansible_user="root",
                    ansible_ssh_private_key_file=sshd.key, ansible_pipelining=True,
                    ansible_ssh_common_args="-o IdentitiesOnly=yes -o StrictHostKeyChecking=no "
                                            "-o UserKnownHostsFile=/dev/null")
    with open(os.path.join(inv, "hosts.yml"), "w") as handle:
        json.dump({"hypervisors": {"hosts": {"localhost": host}}}, handle)   # JSON is YAML
    return inv


def play(scratch, env, inv, playbook):
    argv = [os.path.join(VENV_BIN, "ansible-playbook"), "-i", inv, playbook,
            "-e", "@" + os.path.join(scratch, "extra.json")]
    start = time.perf_counter()
    proc = sh(argv, env=env, cwd=scratch)
    took = time.perf_counter() - start
    if proc.returncode:
        sys.exit("%s failed (rc %d):\n%s%s" % (playbook, proc.returncode, proc.stdout[-6000:], proc.stderr[-3000:]))
    return took, proc.stdout


def counts(out):
    """Tasks started, loop items, and the recap's ok / changed / skipped of one run (all plays)."""
    recap = [tuple(int(x) for x in m.groups()[1:]) for m in RECAP.finditer(out)]
    return {"tasks": len(re.findall(r"^(?:TASK|RUNNING HANDLER) \[", out, re.M)),
            "items": len(re.findall(r"^\w+: \[[^]]+\] => \(item=", out, re.M)),
            "ok": sum(r[0] for r in recap), "changed": sum(r[1] for r in recap),
            "skipped": sum(r[4] for r in recap)}


def snapshot(scratch):
    archive = os.path.join(scratch, "saved.tar")
    with tarfile.open(archive, "w") as tar:
        for path in SAVED:
            if os.path.lexists(path):
                tar.add(path)
    return archive


def restore(archive):
    for path in SAVED:
        if os.path.isdir(path) and not os.path.islink(path):
            shutil.rmtree(path)
        elif os.path.lexists(path):
            os.unlink(path)
    with tarfile.open(archive) as tar:
        tar.extractall("/")          # noqa: S202  our own archive of root-owned paths
    for name in ("libvirtd", "virtqemud"):   # libvirt re-reads its hook programs at reload
        for pid in sh(["pgrep", "-x", name]).stdout.split():
            os.kill(int(pid), signal.SIGHUP)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", "--rounds", type=int, default=3)
    parser.add_argument("--connections", default="local,ssh")
    args = parser.parse_args()
    if os.geteuid() != 0:
        sys.exit("run as root (the roles install under /etc and /usr)")
    held = libvirt_lock.hold("the libvirt lane uses the same host paths")
    scratch = tempfile.mkdtemp(prefix="nvt-bench-converge-")
    os.chmod(scratch, 0o700)
    coll = os.path.join(scratch, "collections", "ansible_collections", "netvirt")
    os.makedirs(coll)
    os.symlink(REPO, os.path.join(coll, "libvirt_hooks"))
    with open(os.path.join(scratch, "extra.json"), "w") as handle:
        json.dump({"hooks_install_packages": False}, handle)
    with open(os.path.join(scratch, "reference.yml"), "w") as handle:
        json.dump(REFERENCE, handle)
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=os.path.join(scratch, "collections"), ANSIBLE_NOCOLOR="1",
               ANSIBLE_LOCAL_TEMP=os.path.join(scratch, "tmp"), ANSIBLE_HOST_KEY_CHECKING="False",
               ANSIBLE_SSH_CONTROL_PATH_DIR=os.path.join(scratch, "cp"))
    saved = snapshot(scratch)
    sshd = Sshd(scratch)
    site = os.path.join(REPO, "playbooks", "site.yml")
    reference = os.path.join(scratch, "reference.yml")
    try:
        print("site.yml second converge vs reference play (facts + 10 stat), median of %d interleaved rounds, "
              "one run" % args.rounds, flush=True)
        for connection in args.connections.split(","):
            if connection == "ssh":
                sshd.start()
            inv = inventory(scratch, connection, sshd)
            first, out = play(scratch, env, inv, site)            # converge (and warm caches)
            first_counts = counts(out)
            play(scratch, env, inv, reference)
            times = {"reference": [], "converge": []}
            for _round in range(args.rounds):
                took, _out = play(scratch, env, inv, reference)
                times["reference"].append(took)
                took, out = play(scratch, env, inv, site)
                times["converge"].append(took)
            med = {k: statistics.median(v) for k, v in times.items()}
            print("  %-5s reference %6.2f s   converge %6.2f s   ratio %5.2fx   (first converge %.2f s, load %.2f)"
                  % (connection, med["reference"], med["converge"], med["converge"] / med["reference"], first,
                     os.getloadavg()[0]))
            for label, c in (("first", first_counts), ("second", counts(out))):
                print("        %-6s tasks %3d  loop items %3d  ok %3d  changed %2d  skipped %3d"
                      % (label, c["tasks"], c["items"], c["ok"], c["changed"], c["skipped"]), flush=True)
    finally:
        sshd.stop()
        restore(saved)
        shutil.rmtree(scratch, ignore_errors=True)
        if held:
            held.close()


if __name__ == "__main__":
    main()
