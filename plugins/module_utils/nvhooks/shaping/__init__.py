# -*- coding: utf-8 -*-
# Copyright: (c) 2026, netvirt developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Traffic shaping: plan, live state, diff, execute, batches, orphans, capabilities, the hook handler."""
