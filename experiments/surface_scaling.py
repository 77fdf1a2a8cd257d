"""Surface throughput and peak memory on digits: first-layer shortcut on/off, grid 51x51 vs 201x201.

Each configuration runs in a fresh subprocess so that its peak resident memory (ru_maxrss) is
its own.  Usage:

    python experiments/surface_scaling.py [--grids 51,201] [--json out.json]

Trains (or reuses) a small digits run in ``runs/scaling`` first.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

CHILD = r"""
import json, resource, sys, time
import jax, numpy as np
import landscape as ls
run, grid, shortcut = sys.argv[1], int(sys.argv[2]), sys.argv[3] == "1"
ens = ls.load_run(run)
data = ls.data.load("digits")
fn = ls.models.metrics_fn(ens.model, ens.config["loss"])
theta = ens.member(0)
dirs = ls.directions.random_directions(jax.random.key(1), theta, 2)
batch = {"train": (data.train.x, data.train.y)}
ls.surface.plane(fn, theta, dirs, num=grid, data=batch, shortcut=shortcut)  # compile + warm up
t0 = time.perf_counter()
surf = ls.surface.plane(fn, theta, dirs, num=grid, data=batch, shortcut=shortcut)
dt = time.perf_counter() - t0
print(json.dumps({"grid": grid, "shortcut": shortcut, "seconds": dt, "points_per_s": grid * grid / dt,
                  "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                  "min_loss": float(np.nanmin(surf.values["train_loss"]))}))
"""


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--grids", default="51,201")
    p.add_argument("--run", default="runs/scaling")
    p.add_argument("--json", default=None)
    args = p.parse_args()
    if not os.path.exists(os.path.join(args.run, "meta.json")):
        subprocess.run([sys.executable, "-m", "landscape.cli", "train", "--seeds", "2", "--steps", "500", "--lr", "3",
                        "--out", args.run, "--quiet", "--no-plot"], check=True, stdout=subprocess.DEVNULL)
    rows = []
    for grid in (int(g) for g in args.grids.split(",")):
        for shortcut in (True, False):
            out = subprocess.run([sys.executable, "-c", CHILD, args.run, str(grid), "1" if shortcut else "0"],
                                 check=True, capture_output=True, text=True).stdout
            rows.append(json.loads(out.strip().splitlines()[-1]))
            r = rows[-1]
            print(f"grid {r['grid']:>4}  shortcut {str(r['shortcut']):>5}  {r['seconds']:7.2f} s  "
                  f"{r['points_per_s']:8.0f} points/s  peak RSS {r['peak_rss_mib']:7.1f} MiB", flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"rows": rows, "time": time.strftime("%Y-%m-%d %H:%M")}, f, indent=2)


if __name__ == "__main__":
    main()
