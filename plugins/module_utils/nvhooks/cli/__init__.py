# -*- coding: utf-8 -*-
# Copyright: (c) 2026, netvirt developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The ``netvirt-hooks`` command: parse, gather, render."""


def main(argv=None):
    """The installed command imports ``nvhooks.cli.main``."""
    from .command import main as run
    return run(argv)
