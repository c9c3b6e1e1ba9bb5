# -*- coding: utf-8 -*-
# Copyright: (c) 2026, netvirt developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The hook dispatcher: events, conf, ordering and safety checks, the runner, logs, built-in handlers."""


def main(driver, argv, **kwargs):
    """Entry programs installed before 0.2 import nvhooks.dispatch.main: keep them working."""
    from .dispatcher import main as run
    return run(driver, argv, **kwargs)
