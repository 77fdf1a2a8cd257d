"""Wall time of one seed sweep on 1 device, on N forced host devices, and on 2 processes.

    python experiments/device_scaling.py [--seeds 64] [--steps 1000] [--devices 8]

Runs ``landscape train`` (the demo's sigmoid 64-16-16-10 network, MSE, full batch, on digits)
three ways and prints the wall time of each, including start-up and compilation; the trained
parameters agree across the three (checked here).  On a machine with fewer cores than forced
devices the sharded runs cannot be faster: they show that the same command scales out.
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import tempfile
import time

import numpy as np


def train(out: str, args, env=None, extra=()):
    return [sys.executable, "-m", "landscape.cli", "train", "--seeds", args.seeds, "--steps", args.steps,
            "--lr", "3", "--out", out, "--quiet", "--no-plot", *extra]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seeds", default="64")
    p.add_argument("--steps", default="1000")
    p.add_argument("--devices", default="8")
    args = p.parse_args()
    tmp = tempfile.mkdtemp()
    base = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
    rows = {}

    t0 = time.perf_counter()
    subprocess.run(train(f"{tmp}/one", args), check=True, env=base, stdout=subprocess.DEVNULL)
    rows["1 device"] = time.perf_counter() - t0

    env = {**base, "XLA_FLAGS": f"--xla_force_host_platform_device_count={args.devices}"}
    t0 = time.perf_counter()
    subprocess.run(train(f"{tmp}/many", args), check=True, env=env, stdout=subprocess.DEVNULL)
    rows[f"{args.devices} forced host devices"] = time.perf_counter() - t0

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    t0 = time.perf_counter()
    procs = [subprocess.Popen(train(f"{tmp}/two", args, extra=("--coordinator", f"127.0.0.1:{port}",
                                                            "--num-processes", "2", "--process-id", str(i))),
                              env=base, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) for i in range(2)]
    codes = [pr.wait(timeout=3600) for pr in procs]
    rows["2 processes (1 device each)"] = time.perf_counter() - t0
    assert codes == [0, 0], codes

    import landscape as ls

    ref = ls.load_run(f"{tmp}/one").params
    for name in ("many", "two"):
        other = ls.load_run(f"{tmp}/{name}").params
        for a, b in zip(ls.tree.flatten_with_paths(ref).values(), ls.tree.flatten_with_paths(other).values()):
            np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)
    print(f"{args.seeds} seeds x {args.steps} full-batch steps, digits 64-16-16-10 sigmoid/MSE, {os.cpu_count()} CPU cores")
    for k, v in rows.items():
        print(f"  {k:<32} {v:7.1f} s")


if __name__ == "__main__":
    main()
