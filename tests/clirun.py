"""Running the ``landscape`` command in a subprocess, for the CLI tests."""

import os
import subprocess
import sys


def run(*args, cwd=None, timeout=300, env=None):
    env = dict(os.environ if env is None else env)
    env.setdefault("JAX_PLATFORMS", "cpu")  # the backend the tests run on (conftest's default: the CPU)
    return subprocess.run([sys.executable, "-m", "landscape.cli", *args], capture_output=True, text=True,
                          cwd=cwd, timeout=timeout, env=env, stdin=subprocess.DEVNULL)


TINY = ["--dataset", "blobs", "--hidden", "4", "--steps", "6", "--log-every", "2", "--seeds", "3", "--quiet"]
