"""Repo-wide test setup: make the core importable as `import nvhooks`, and
shared test helpers (tests/helpers) as plain modules, also under ansible-test."""
import os
import sys

_TESTS = os.path.dirname(os.path.abspath(__file__))
for _path in (os.path.join(os.path.dirname(_TESTS), "plugins", "module_utils"), os.path.join(_TESTS, "helpers")):
    if _path not in sys.path:
        sys.path.insert(0, _path)
