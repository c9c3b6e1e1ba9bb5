"""Scratch hook tree helpers for the dispatcher tests (NETVIRT_HOOKS_ROOT); holds no tests."""
import io
import os

XML = (b"<domain type='qemu'><name>g1</name><uuid>1b4e28ba-2fa1-11d2-883f-0016d3cca427</uuid>"
       b"<description>old</description><devices/></domain>\n")


class Tree:
    def __init__(self, root):
        self.root = str(root)
        os.chmod(self.root, 0o755)
        self.hooks = self.path("/etc/libvirt/hooks")
        os.makedirs(self.hooks, exist_ok=True)
        self.logs = self.path("/var/log/libvirt/hooks")
        self.dispatcher_conf("builtins: no\nsyslog: no\n")

    def path(self, rel):
        return self.root + rel

    def write(self, rel, text, mode=0o644):
        full = os.path.join(self.hooks, rel)
        os.makedirs(os.path.dirname(full), exist_ok=True)
        with open(full, "w") as handle:
            handle.write(text)
        os.chmod(full, mode)
        return full

    def script(self, rel, body, mode=0o755, conf=None, shell="/bin/sh"):
        full = self.write(rel, "#!%s\n%s\n" % (shell, body), mode)
        if conf is not None:
            self.write("conf/%s.conf" % os.path.basename(full), conf)
        return full

    def dispatcher_conf(self, text):
        self.write("netvirt/dispatcher.conf", text)

    def log(self, name):
        with open(os.path.join(self.logs, name)) as handle:
            return handle.read()

    def logs_list(self):
        return sorted(os.listdir(self.logs)) if os.path.isdir(self.logs) else []


def call(driver, args, stdin=b""):
    """Run the dispatcher in-process: (rc, stdout bytes, stderr text)."""
    from nvhooks.dispatch import dispatcher as dispatch
    out, err = io.BytesIO(), io.StringIO()
    rc = dispatch.main(driver, list(args), stdin=io.TextIOWrapper(io.BytesIO(stdin)), stdout=out, stderr=err)
    return rc, out.getvalue(), err.getvalue()
