# -*- coding: utf-8 -*-
# Copyright: (c) 2026, netvirt developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The hook dispatcher: one libvirt hook call -> ordered, bounded, logged steps.

Exit status follows libvirt's contract (docs/hooks.md "Exit status"): non-zero
only where a failure must abort the operation, never at ``reconnect`` (libvirt
would kill the running guest). Stdout carries a domain XML only for
migrate/restore and only from declared, validated XML filters.
"""

import os
import sys
import time

from . import conf as confmod
from . import hooklog, runner, scripts
from .. import paths
from .event import Event

DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


class Outcome:
    """What the event came to: failures that abort, and the XML for libvirt."""

    def __init__(self, event):
        self.event = event
        self.failures = []      # (step name, reason) that abort the operation
        self.xml = event.stdin  # the chained XML-filter result
        self.xml_changed = False
        self.refuse_xml = None  # an invalid filter output: always fatal

    @property
    def exit_status(self):
        if self.event.op == "reconnect":
            return 0
        if self.refuse_xml is not None:
            return 1
        return 1 if self.failures and self.event.aborts_on_failure else 0


class Dispatcher:
    def __init__(self, event, dconf, log_dir=None):
        self.event = event
        self.dconf = dconf
        self.log_dir = log_dir or dconf.log_dir
        self.deadline = time.monotonic() + dconf.event_timeout
        self.outcome = Outcome(event)
        self._stdin_fd = None
        self._host = None
        self._expect = None   # (name, uuid) of the incoming XML, for filters
        self._log_problem_shown = False

    # --------------------------------------------------------------- running
    def run(self):
        steps = scripts.plan(self.event, self.dconf, paths.hooks_dir(), paths.originals_dir())
        try:
            for step in steps:
                if self.outcome.failures and self.event.aborts_on_failure:
                    self._note(step, "WARNING", f"not run: an earlier step failed and {self.event.name} is aborted")
                    continue
                if step.kind == "builtin":
                    self._builtin(step)
                else:
                    self._external(step)
        finally:
            if self._stdin_fd is not None:
                os.close(self._stdin_fd)
        return self.outcome

    def _record(self, step):
        level = step.conf.log_level if step.conf is not None else self.dconf.log_level
        label = fields = None
        if step.kind == "builtin" and self.dconf.syslog:
            # the handlers' records also go to the journal/syslog, with the step's fields
            label = f"{self.event.name} {self.event.object} {step.name}"
            fields = hooklog.step_fields(self.event, step.name)
        return hooklog.Record(hooklog.log_path(self.log_dir, self.event, step.name), level, label, fields)

    def _note(self, step, level, message):
        rec = self._record(step)
        rec.add(level, f"{self.event.name} {' '.join(self.event.args)}: {message}")
        self._flush(rec)
        self._summary(level, step, message)

    def _summary(self, level, step, message, duration=None):
        if self.dconf.syslog:
            hooklog.syslog(level, f"{self.event.name} {self.event.object} {step.name}: {message}",
                           hooklog.step_fields(self.event, step.name, duration))

    def _flush(self, rec):
        problem = rec.flush()
        if problem and not self._log_problem_shown:
            # once per event: the same cause (a full or read-only folder) hits every record
            self._log_problem_shown = True
            sys.stderr.write(f"netvirt-hooks: {problem}\n")

    def _fail(self, step, reason, fail_policy="abort"):
        if fail_policy == "abort":
            self.outcome.failures.append((step.name, reason))

    def _external(self, step):
        conf = step.conf
        fail_policy = conf.fail if conf is not None else "abort"
        if step.problem is not None:
            level = "WARNING" if step.severity == "skip" else "ERROR"
            self._note(step, level, ("skipped: " if step.severity == "skip" else "refused: ") + step.problem)
            if step.severity == "refuse":
                self._fail(step, f"refused: {step.problem}", fail_policy)
            return
        rec = self._record(step)
        left = self.deadline - time.monotonic()
        if left <= 0:
            rec.add("ERROR", f"{self.event.name}: not run, the event deadline "
                             f"({self.dconf.event_timeout:g}s) has passed")
            self._flush(rec)
            self._summary("ERROR", step, "not run: event deadline passed")
            self._fail(step, "not run: event deadline passed", fail_policy)
            return
        timeout = min(conf.timeout, left)
        is_filter = self.event.takes_xml_output and (
            conf.xml_filter or (step.kind == "original" and "xml_filter" not in conf.values))
        stdin = self._filter_stdin() if is_filter else self._shared_stdin()
        env = dict(os.environ)
        env.setdefault("PATH", DEFAULT_PATH)
        env.update(NETVIRT_HOOK_EVENT=self.event.name, NETVIRT_HOOK_DRIVER=self.event.driver,
                   NETVIRT_HOOK_OBJECT=self.event.object, NETVIRT_HOOK_OP=self.event.op,
                   NETVIRT_HOOK_SUBOP=self.event.subop, NETVIRT_HOOK_CONF=conf.source,
                   NETVIRT_HOOK_LOG=rec.path, NETVIRT_HOOK_XML_FILTER="1" if is_filter else "0")
        reason = self.event.shutoff_reason
        if self.event.driver == "qemu" and self.event.op == "release":
            # empty: libvirt < 10.5 does not say why the guest stopped
            env["NETVIRT_HOOK_SHUTOFF_REASON"] = reason or ""
        rec.add("INFO", f"start {step.target} ({step.source}) for {self.event.name}, timeout {timeout:g}s"
                        f"{', XML filter' if is_filter else ''}"
                        f"{f', shutoff reason {reason}' if reason else ''}")
        rec.add("DEBUG", f"args: {self.event.args!r}")
        changed = scripts.Safety().recheck(step)   # the file run is the file checked
        if changed is not None:
            if is_filter:
                os.close(stdin)
            rec.add("ERROR", f"refused: {changed}")
            self._flush(rec)
            self._summary("ERROR", step, f"refused: {changed}")
            self._fail(step, f"refused: {changed}", fail_policy)
            return
        try:
            # Exec the entry as found, so $0 is the link (shebang scripts see the
            # exec path, not argv[0]); its folders were checked root-owned, not writable.
            res = runner.run(step.path, [step.path] + self.event.args, env, stdin, timeout,
                             self.dconf.grace, runner.XML_CAPTURE if is_filter else runner.LOG_CAPTURE)
        finally:
            if is_filter:
                os.close(stdin)
        rec.output("DEBUG" if is_filter else "INFO", "stdout", res.stdout, res.truncated)
        rec.output("INFO", "stderr", res.stderr)
        if res.lingering:
            rec.add("WARNING", "a background process still holds its stdout/stderr; not waited for")
        if res.error:
            message = res.error
        elif res.timed_out:
            message = f"timed out after {timeout:g}s; process group {res.pgid} killed ({res.killed})"
        else:
            message = f"exit {res.rc} after {res.duration:.3f}s"
        ok = res.ok
        if ok and is_filter and res.stdout.strip():
            ok = self._take_xml(step, res.stdout, rec)
            if not ok:
                message = f"XML filter output refused: {self.outcome.refuse_xml}"
        if ok:
            level = "INFO"
        elif self.event.op == "reconnect" or fail_policy == "ignore" or not self.event.aborts_on_failure:
            level = "ERROR"
            why = ("ignored at reconnect: the guest keeps running" if self.event.op == "reconnect"
                   else "fail: ignore" if fail_policy == "ignore" and self.event.aborts_on_failure
                   else f"logged, {self.event.op} is not aborted")
            message += f" ({why})"
        else:
            level = "ERROR"
            message += f" ({self.event.name} is aborted)"
        rec.add(level, message)
        self._flush(rec)
        self._summary(level, step, message, res.duration)
        if not ok:
            self._fail(step, message, fail_policy)

    def _shared_stdin(self):
        if self._stdin_fd is None:
            self._stdin_fd = runner.stdin_fd(self.event.stdin)
        os.lseek(self._stdin_fd, 0, os.SEEK_SET)
        return self._stdin_fd

    def _filter_stdin(self):
        return runner.stdin_fd(self.outcome.xml)

    def _take_xml(self, step, data, rec):
        """Accept a filter's XML if it is a domain with the same name and uuid."""
        from ..policy import domxml
        from ..errors import NetvirtError
        try:
            if self._expect is None:
                self._expect = domxml.domain_name_uuid(self.event.stdin, "XML from libvirt")
            got = domxml.domain_name_uuid(data, f"output of {step.name}")
        except NetvirtError as err:
            self.outcome.refuse_xml = str(err)
            return False
        if got != self._expect:
            self.outcome.refuse_xml = f"name/uuid {got[0]}/{got[1]} differ from {self._expect[0]}/{self._expect[1]}"
            return False
        self.outcome.xml, self.outcome.xml_changed = data, True
        rec.add("INFO", f"XML filter output accepted ({len(data)} bytes)")
        return True

    # -------------------------------------------------------------- built-ins
    def _builtin(self, step):
        rec = self._record(step)
        if step.handler is None:      # the registry could not be imported (scripts._builtins)
            rec.add("WARNING", f"built-in handlers {step.problem}")
            self._flush(rec)
            return
        from ..errors import NetvirtError
        from .. import locks
        handler = step.handler
        if self.deadline - time.monotonic() <= 0:
            self._handler_failed(step, rec, f"not run: the event deadline ({self.dconf.event_timeout:g}s) has passed")
            return
        # the handlers' lock waits end with the event's budget, not 30 s per lock
        locks.set_deadline(self.deadline)
        try:
            if step.function == "handle" and self._handed_off(step, rec):
                return
            if step.function == "handle":
                if not handler.wants(self.event, self.event.stdin, _LazyHost(self)):
                    return
                if self.event.shutoff_reason:
                    rec.add("INFO", f"{self.event.name}: shutoff reason {self.event.shutoff_reason}")
                host = self._host_policy()
                from ..policy import domxml
                domain = domxml.parse_domain(self.event.stdin, "XML from libvirt")
                began = time.monotonic()
                handler.handle(self.event, domain, host, hooklog.handler_logger(rec))
            else:
                host = self._host_policy()
                began = time.monotonic()
                handler.daemon(host, hooklog.handler_logger(rec))
            self._flush(rec)
            took = time.monotonic() - began
            self._summary("INFO", step, f"done in {took * 1000:.0f} ms", took)
        except NetvirtError as err:
            self._handler_failed(step, rec, str(err))
        except Exception as err:  # a bug in a handler is logged, reconnect still exits 0
            import traceback
            rec.add("DEBUG", traceback.format_exc())
            self._handler_failed(step, rec, f"internal error: {err!r}")

    def _handed_off(self, step, rec):
        """Run the step in a running agent (dispatch/handoff.py); False: run it here."""
        from . import handoff
        if not handoff.enabled(self.dconf):
            return False
        answer = handoff.ask(self.event, step.handler.name, rec.threshold, self.deadline, self.dconf.event_timeout)
        if answer is None:
            return False
        if answer.wanted:
            answer.replay(self.event, rec, hooklog.syslog)
            if answer.error is not None:
                self._handler_failed(step, rec, answer.error)
            else:
                self._flush(rec)
                self._summary("INFO", step, f"done in {answer.took * 1000:.0f} ms", answer.took)
        return True

    def _handler_failed(self, step, rec, reason):
        if self.event.aborts_on_failure and self.event.op != "reconnect":
            reason += f" ({self.event.name} is aborted)"
        function = "handle" if step.function == "handle" else step.handler.daemon_name
        rec.add("ERROR", f"{step.handler.name}.{function} failed: {reason}")
        self._flush(rec)
        self._summary("ERROR", step, reason)
        self._fail(step, reason)

    def _host_policy(self):
        if self._host is None:
            from ..policy import model as policy
            self._host = policy.load_host_policy(paths.policy_file())
        return self._host


class _LazyHost:
    """The host policy for ``wants()``, loaded on first attribute access.

    Most events are of no interest to any handler; they must not pay for
    importing and parsing the policy (bench/hook_latency.py).
    """

    def __init__(self, dispatcher):
        self._dispatcher = dispatcher

    def __getattr__(self, name):
        # No policy file: nothing can match, and policy.py need not be imported.
        if name in ("rules", "groups") and self._dispatcher._host is None \
                and not os.path.exists(paths.policy_file()):
            return ()
        return getattr(self._dispatcher._host_policy(), name)


def _read_stdin(stream):
    try:
        if stream.isatty():
            return b""
        return stream.buffer.read() if hasattr(stream, "buffer") else stream.read()
    except (OSError, ValueError):
        return b""


def load_conf():
    """The dispatcher conf; a broken one falls back to defaults (and says so)."""
    try:
        return confmod.load_dispatcher(), None
    except confmod.ConfError as err:
        return confmod.DispatcherConf(), str(err)


def main(driver, argv, stdin=None, stdout=None, stderr=None):
    """Entry point of /etc/libvirt/hooks/<driver>. Returns the exit status.

    Nothing escapes: where a non-zero exit would make libvirt kill a running
    guest or fail a stop (reconnect, stopped, release, daemon events), any
    exception at all (a bug, EMFILE, a full disk) ends in exit 0 and one line
    on stderr and syslog. Where libvirt aborts on failure (prepare, start...),
    it ends in exit 1: a guest whose policy could not be applied never runs.
    """
    stderr = stderr if stderr is not None else sys.stderr
    try:
        return _run(driver, argv, stdin, stdout, stderr)
    except BaseException as err:  # pylint: disable=broad-except
        # see the docstring
        return crashed(driver, argv, err, stderr)


def crashed(driver, argv, err, stderr):
    """The exit status and one clear line for an exception that reached the top."""
    event = Event(driver, argv)
    status = 1 if event.aborts_on_failure else 0
    what = "aborted" if status else "not aborted, the guest is left as it is"
    line = hooklog.safe_text(f"{event.name} {event.object}: internal error ({what}): {err!r}")
    try:
        stderr.write(f"netvirt-hooks: {line}\n")
    except Exception:  # pylint: disable=broad-except
        # a closed stderr must not change the status
        pass
    try:
        hooklog.syslog("ERROR", line)
    except Exception:  # pylint: disable=broad-except
        pass
    return status


def _run(driver, argv, stdin, stdout, stderr):
    stdin = stdin if stdin is not None else sys.stdin
    stdout = stdout if stdout is not None else sys.stdout.buffer
    event = Event(driver, argv, _read_stdin(stdin))
    dconf, conf_problem = load_conf()
    if conf_problem:
        stderr.write(f"netvirt-hooks: {conf_problem}; using defaults\n")
        hooklog.syslog("ERROR", f"{conf_problem}; using defaults")
    if not event.known:
        rec = hooklog.Record(os.path.join(dconf.log_dir, "dispatcher.log"), dconf.log_level)
        rec.add("INFO", f"unknown event {driver} {event.args!r}: nothing run")
        rec.flush()
        return 0
    outcome = Dispatcher(event, dconf).run()
    if outcome.refuse_xml is not None:
        stderr.write(f"netvirt-hooks: {event.name} refused: XML filter output invalid: {outcome.refuse_xml}\n")
    elif outcome.failures and outcome.exit_status:
        name, reason = outcome.failures[0]
        stderr.write(f"netvirt-hooks: {name} failed at {event.name}: {reason}\n")
    if outcome.exit_status == 0 and outcome.xml_changed:
        stdout.write(outcome.xml)
        stdout.flush()
    return outcome.exit_status


def query(event_name, guest="-"):
    """The troubleshooting view: what ``event_name`` would run, in order."""
    from .event import parse_name
    driver, op, subop = parse_name(event_name)
    event = Event(driver, [guest, op, subop or ("-" if driver == "daemon" else "begin"), "-"])
    dconf, _problem = load_conf()
    hooks_dir = paths.hooks_dir()
    steps = scripts.plan(event, dconf, hooks_dir, paths.originals_dir())
    order = [step.as_dict() for step in steps] + scripts.libvirt_tail(event, hooks_dir)
    for position, item in enumerate(order, 1):
        item["position"] = position
    return order
