# -*- coding: utf-8 -*-
# Copyright: (c) 2026, netvirt developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Prometheus exposition of the shaping snapshot (collect.py): text, textfile, HTTP.

The exposition is made by the distribution's prometheus_client (Debian:
python3-prometheus-client) through a custom collector, read fresh from the
kernel at every render or scrape. Three ways out, for ``netvirt-hooks
metrics`` and the agent:

* ``render()``: the text exposition (bytes);
* ``write_textfile(path)``: atomic write (temp file in the same folder,
  mode 0644, rename) for node_exporter's textfile collector;
* ``serve(address, port)``: ``/metrics`` over HTTP, bound to ``address``
  (localhost by default); returns a server with ``shutdown()``.

Metric names and labels are in docs/metrics.md.
"""

import os

from ..errors import NetvirtError

DEFAULT_ADDRESS = "127.0.0.1"
DEFAULT_PORT = 9847
PORT_LABELS = ("guest", "uuid", "dev", "mac", "index", "direction", "group")
GROUP_LABELS = ("group", "direction")
# (snapshot key, metric suffix, help); counters get _total from prometheus_client
_COUNTERS = (("bytes", "bytes", "Bytes sent through the HTB class holding this traffic"),
             ("packets", "packets", "Packets sent through the HTB class holding this traffic"),
             ("drops", "drops", "Packets dropped by the class (its queue was full)"),
             ("overlimits", "overlimits", "Times the class was over its rate and had to wait"))
_GAUGES = (("backlog", "backlog_bytes", "Bytes queued in the class now"),
           ("qlen", "backlog_packets", "Packets queued in the class now"),
           ("rate", "rate_bytes_per_second", "Configured rate (a group member: the most it may use)"),
           ("ceil", "ceil_bytes_per_second", "Configured ceiling (peak)"),
           ("floor", "floor_bytes_per_second", "Configured guaranteed rate (group members)"),
           ("shaped", "shaped", "1 when the class of this policy is in the kernel, 0 when it is missing"))
_GROUP_GAUGES = (("backlog", "backlog_bytes", "Bytes queued in the group's shared class now"),
                 ("qlen", "backlog_packets", "Packets queued in the group's shared class now"),
                 ("rate", "rate_bytes_per_second", "Configured group ceiling, shared by its members"),
                 ("floor", "floor_bytes_per_second", "Configured default guaranteed rate per member"),
                 ("members", "members", "Running ports in the group"),
                 ("shaped", "shaped", "1 when the group's class is in the kernel, 0 when it is missing"))


def families(snap):
    """prometheus_client metric families of one snapshot (collect.snapshot's dict)."""
    from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
    out = []
    for kind, rows, labels, counters, gauges in (
            ("port", snap.get("ports", []), PORT_LABELS, _COUNTERS, _GAUGES),
            ("group", snap.get("groups", []), GROUP_LABELS, _COUNTERS, _GROUP_GAUGES)):
        for make, specs in ((CounterMetricFamily, counters), (GaugeMetricFamily, gauges)):
            for key, suffix, text in specs:
                family = make(f"netvirt_{kind}_{suffix}", f"{text} (per {kind} and direction).", labels=labels)
                for row in rows:
                    value = row.get(key)
                    if value is not None:
                        family.add_metric([str(row.get(name, "")) for name in labels], float(value))
                out.append(family)
    errors = GaugeMetricFamily("netvirt_metrics_errors",
                               "Guests, ports or policy that could not be read for this scrape.")
    errors.add_metric([], float(len(snap.get("errors", []))))
    out.append(errors)
    return out


class _Collector:
    """A custom collector: a fresh snapshot per collect (per render or scrape)."""

    def __init__(self, source):
        self.source = source

    def collect(self):
        try:
            snap = self.source()
        except NetvirtError as err:   # e.g. pyroute2 missing: say so in the exposition
            snap = {"errors": [str(err)]}
        return iter(families(snap))


def registry(source=None):
    """A registry of its own (never the global one) with our collector."""
    from prometheus_client import CollectorRegistry
    from . import collect
    reg = CollectorRegistry(auto_describe=False)
    reg.register(_Collector(source or collect.snapshot))
    return reg


def exposition(snap):
    """The text exposition (bytes) of a snapshot already taken."""
    from prometheus_client import generate_latest
    return generate_latest(registry(lambda: snap))


def render(source=None):
    """The text exposition (bytes) of every running guest's ports and groups, read now."""
    from prometheus_client import generate_latest
    return generate_latest(registry(source))


def write_textfile(path, source=None):
    """Write the exposition to ``path`` atomically, mode 0644 (node_exporter's textfile collector).

    The temporary file is in the same folder (rename is atomic only within a
    file system) and does not end in ``.prom``: the collector never reads a
    half-written file.
    """
    import tempfile
    data = render(source)
    folder, base = os.path.split(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=f".{base}.", suffix=".tmp", dir=folder)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fchmod(handle.fileno(), 0o644)
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    return path


class Server:
    """A running /metrics HTTP server (in a daemon thread); ``shutdown()`` stops it."""

    def __init__(self, httpd, thread):
        self.httpd, self.thread = httpd, thread
        self.address, self.port = httpd.server_address[:2]

    def shutdown(self):
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=5)


def serve(address=DEFAULT_ADDRESS, port=DEFAULT_PORT, source=None):
    """Serve ``/metrics`` on ``address``:``port`` (0: any free port, see ``Server.port``)."""
    import threading
    from http.server import ThreadingHTTPServer
    from prometheus_client.exposition import MetricsHandler

    base = MetricsHandler.factory(registry(source))

    class Handler(base):  # pylint: disable=too-few-public-methods
        def do_GET(self):  # noqa: N802  pylint: disable=invalid-name
            if self.path.split("?")[0] not in ("/metrics", "/metrics/"):
                self.send_error(404, "only /metrics here")
                return
            super().do_GET()

    httpd = ThreadingHTTPServer((address, port), Handler)
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, name="netvirt-metrics", daemon=True)
    thread.start()
    return Server(httpd, thread)
