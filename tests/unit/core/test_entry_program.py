"""The entry program the hooks role installs (roles/hooks/templates/entry.py.j2): it guards
the whole run, so a broken install never makes libvirt kill a running guest (issue #11.4)."""
import os
import re
import subprocess
import sys

import pytest

import nvhooks

PLUGINS = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(nvhooks.__file__))))
TEMPLATE = os.path.join(PLUGINS, "..", "roles", "hooks", "templates", "entry.py.j2")


def render(tmp_path, driver, lib_dir):
    """The template with its three Jinja expressions filled as the role fills them (no Jinja needed)."""
    with open(os.path.normpath(TEMPLATE), encoding="utf-8") as handle:
        text = handle.read()
    text = text.replace("{{ ansible_managed | comment }}", "# Ansible managed")
    text = text.replace("{{ __hooks_driver | to_json }}", f'"{driver}"').replace("{{ __hooks_driver }}", driver)
    text = text.replace("{{ hooks_lib_dir | string | to_json }}", repr(str(lib_dir)))
    assert "{{" not in text and "{%" not in text
    path = tmp_path / driver
    path.write_text(text)
    path.chmod(0o755)
    return path


def run(entry, *args, env=None):
    return subprocess.run([sys.executable, "-I", str(entry), *args], capture_output=True, text=True,
                          stdin=subprocess.DEVNULL, check=False, env=env)


@pytest.mark.parametrize("driver, args, status", [
    ("qemu", ["g1", "reconnect", "begin", "-"], 0),
    ("qemu", ["g1", "stopped", "end", "-"], 0),
    ("qemu", ["g1", "release", "end", "-"], 0),
    ("daemon", ["-", "start", "-", "start"], 0),
    ("lxc", ["c1", "reconnect", "begin", "-"], 0),
    ("qemu", ["g1", "start", "begin", "-"], 1),
    ("qemu", ["g1", "prepare", "begin", "-"], 1),
])
def test_a_broken_install_never_kills_a_running_guest(tmp_path, driver, args, status):
    broken = tmp_path / "lib"
    (broken / "nvhooks" / "dispatch").mkdir(parents=True)
    (broken / "nvhooks" / "__init__.py").write_text("")
    (broken / "nvhooks" / "dispatch" / "__init__.py").write_text("")
    (broken / "nvhooks" / "dispatch" / "dispatcher.py").write_text("raise MemoryError('half an install')\n")
    proc = run(render(tmp_path, driver, broken), *args)
    assert proc.returncode == status
    assert proc.stderr.count("\n") == 1 and "cannot run the dispatcher" in proc.stderr
    assert "half an install" in proc.stderr and re.search(r"\((not )?aborted\)", proc.stderr)


def test_with_the_real_core_it_runs_the_dispatcher(tmp_path):
    entry = render(tmp_path, "qemu", os.path.join(PLUGINS, "module_utils"))
    env = dict(os.environ, NETVIRT_HOOKS_ROOT=str(tmp_path))
    proc = run(entry, "g1", "nosuchop", "begin", "-", env=env)     # unknown op: logged, exit 0
    assert (proc.returncode, proc.stderr) == (0, "")
    with open(tmp_path / "var/log/libvirt/hooks/dispatcher.log", encoding="utf-8") as handle:
        assert "unknown event qemu" in handle.read()
