"""Repo-wide test setup: make the core importable as `import nvhooks`."""
import os
import sys

_MODULE_UTILS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                             "plugins", "module_utils")
if _MODULE_UTILS not in sys.path:
    sys.path.insert(0, _MODULE_UTILS)
