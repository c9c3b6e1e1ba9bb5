"""Log collection: 10,000 distinct guests through the real dispatcher, then `netvirt-hooks gc --only logs`.

Against a scratch NETVIRT_HOOKS_ROOT (no root needed, nothing on the host is
touched): one custom script (custom/all_note) so every event leaves a
per-script log, then per guest `qemu started begin` and `qemu release end`
through the dispatcher's entry point (in-process, each script a real child
process), in --jobs worker processes. Then every log is dated back past
log_max_age_days (standing in for a month going by), status XML is written for
--present guests (the ones "still running"), and the collection runs as the
command does. Prints the file count before/after and the time each phase took;
checks that exactly the present guests' logs are left. Asserts nothing on time.

Run: /usr/bin/python3 bench/log_collection.py [--guests 10000] [--present 100] [--jobs 2]
"""
import argparse
import io
import multiprocessing
import os
import shutil
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(REPO, "plugins", "module_utils"))
DAY = 86400


def xml(name):
    return f"<domain type='qemu'><name>{name}</name><devices/></domain>".encode()


def drive(names):
    from nvhooks.dispatch import dispatcher
    for name in names:
        for op, subop in (("started", "begin"), ("release", "end")):
            rc = dispatcher.main("qemu", [name, op, subop, "-"], stdin=io.TextIOWrapper(io.BytesIO(xml(name))),
                                 stdout=io.BytesIO(), stderr=sys.stderr)
            if rc:
                raise SystemExit(f"{name} {op}: exit {rc}")
    return len(names)


def write(path, text, mode=0o644):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as handle:
        handle.write(text)
    os.chmod(path, mode)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--guests", type=int, default=10000)
    parser.add_argument("--present", type=int, default=100)
    parser.add_argument("--jobs", type=int, default=2)
    args = parser.parse_args()
    root = tempfile.mkdtemp(prefix="nvt-bench-loggc-")
    os.chmod(root, 0o755)
    os.environ["NETVIRT_HOOKS_ROOT"] = root
    try:
        hooks = root + "/etc/libvirt/hooks"
        logs = root + "/var/log/libvirt/hooks"
        write(hooks + "/netvirt/dispatcher.conf", "builtins: no\nsyslog: no\nlog_max_age_days: 30\n")
        write(hooks + "/custom/all_note", "#!/bin/sh\nexit 0\n", 0o755)
        names = [f"bench-{i:05d}" for i in range(args.guests)]
        t0 = time.perf_counter()
        with multiprocessing.Pool(args.jobs) as pool:
            done = sum(pool.map(drive, [names[i::args.jobs] for i in range(args.jobs)]))
        t_drive = time.perf_counter() - t0
        before = os.listdir(logs)
        then = time.time() - 31 * DAY
        for name in before:
            os.utime(os.path.join(logs, name), (then, then))
        present = names[:args.present]
        for name in present:
            write(f"{root}/run/libvirt/qemu/{name}.xml", xml(name).decode())
        from nvhooks.cli import command as cli
        t0 = time.perf_counter()
        with open(os.devnull, "w") as null:
            saved, sys.stdout = sys.stdout, null
            try:
                rc = cli.main(["gc", "--only", "logs"])
            finally:
                sys.stdout = saved
        t_gc = time.perf_counter() - t0
        after = os.listdir(logs)
        left = sorted({n.split("_", 3)[3].rsplit("_all_note", 1)[0] for n in after})
        ok = rc == 0 and left == present and len(after) == 2 * args.present
        print(f"log collection, {done} guests x 2 events through the dispatcher ({args.jobs} jobs): "
              f"{t_drive:.1f} s ({t_drive / (2 * done) * 1000:.2f} ms per event)")
        print(f"  files before {len(before)}, after {len(after)} ({len(left)} guests left, "
              f"{args.present} present): {'ok' if ok else 'WRONG'}")
        print(f"  netvirt-hooks gc --only logs: {t_gc:.2f} s ({t_gc / len(before) * 1e6:.0f} us per file); "
              f"load {os.getloadavg()[0]:.2f}")
        if not ok:
            raise SystemExit(1)
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
