"""The journal entry and the native protocol's bytes (dispatch/journal.py); journald itself: tests/kernel/test_journal.py."""
import os
import subprocess
import sys

import nvhooks
from nvhooks.dispatch import journal


def test_entry_has_identifier_priority_and_cleaned_fields():
    entry = journal.items("shaped", 6, {"guest": "web1", "_PID": "1", "port": "vnet3", "changed": 2, "MAC": None,
                                        "odd-name": b"\xff"})
    assert entry == [b"MESSAGE=shaped", b"PRIORITY=6", b"SYSLOG_IDENTIFIER=netvirt-hooks", b"SYSLOG_FACILITY=3",
                     b"GUEST=web1", b"PID=1", b"PORT=vnet3", b"CHANGED=2", b"ODD_NAME=\\xff"]


def test_native_datagram_uses_the_length_form_for_newlines():
    data = journal.native_datagram([b"MESSAGE=two\nlines", b"GUEST=web1"])
    assert data == b"MESSAGE\n" + (9).to_bytes(8, "little") + b"two\nlines\nGUEST=web1\n"


def test_long_values_are_cut():
    assert len(journal.value_bytes("x" * (journal.MAX_VALUE + 10))) == journal.MAX_VALUE + len(b"...(cut)")


def test_no_socket_means_no_backend_and_no_import():
    code = ("import sys; from nvhooks.dispatch import journal; journal.SOCKET = '/nonexistent';"
            "print(journal.send('x', 6), journal.backend(), 'systemd' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={"PYTHONPATH": os.path.dirname(os.path.dirname(nvhooks.__file__))}).stdout
    assert out.split() == ["False", "None", "False"]
