# -*- coding: utf-8 -*-
# Copyright: (c) 2026, netvirt developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""``netvirt-hooks`` exit codes (documented in ``--help``) and the error that carries one."""

EXIT_OK = 0
EXIT_PROBLEM = 1      # drift found, or apply/teardown failed
EXIT_USAGE = 2        # argparse's own code for bad usage
EXIT_NOT_RUNNING = 3  # no status XML: the guest is not running here
EXIT_BAD_POLICY = 4   # host policy, guest <metadata> or status XML invalid
EXIT_ENVIRONMENT = 5  # missing pyroute2, not root, kernel lacks a feature


class CliError(Exception):
    """A failure with its exit code; the message is printed as is."""

    def __init__(self, message, code):
        super().__init__(message)
        self.code = code
