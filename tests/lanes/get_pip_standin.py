"""Stand-in for ansible-test's downloaded get-pip script (no access to its host).

Called as: python <this> --disable-pip-version-check pip==X [pkgs] --no-setuptools --no-wheel
"""
import ensurepip
import os
import subprocess
import sys

ensurepip.bootstrap(upgrade=True)
# ensurepip leaves PIP_CONFIG_FILE=/dev/null behind; pip then ignores the
# machine's index and certificate settings.
os.environ.pop("PIP_CONFIG_FILE", None)
args = [a for a in sys.argv[1:] if a not in ("--no-setuptools", "--no-wheel")]
sys.exit(subprocess.call([sys.executable, "-m", "pip", "install"] + args))
