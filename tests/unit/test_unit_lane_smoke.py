"""Proves the unit lane runs with the intended libraries and finds the core."""
import importlib
import os


def test_core_importable_from_module_utils():
    nvhooks = importlib.import_module("nvhooks")
    assert os.path.join("plugins", "module_utils", "nvhooks") in nvhooks.__file__


def test_pyroute2_version_is_the_lanes():
    import pyroute2  # noqa: F401
    want = os.environ.get("NVT_EXPECT_PYROUTE2")  # set by tests/lanes/unit.sh
    from importlib.metadata import version as dist_version
    version = dist_version("pyroute2")  # pyroute2.__version__ is "unknown" on Debian
    assert not want or version.startswith(want + "."), (version, want)
