"""What the fixed groups of members cost an MLP sweep on a CPU (issue #32, item 2).

On one CPU device :func:`landscape.training.memory.layout` trains members in vmapped groups of
exactly ``GROUP`` (8), up to ``MAX_LISTED_GROUPS`` groups side by side in each of several
concurrent calls, so that a member is bitwise the same alone and in any sweep.  This script times the benchmark's two MLP sweeps (64 seeds of
the digits net 64-32-32-10: 300 full-batch steps; 1,000 steps of batch 128) under other layouts —
one vmapped batch of all members, larger groups, fewer side by side, fewer or more concurrent
calls — and says whether each
gives the same parameters as the default layout (bitwise) or how far they are.

    python experiments/group_cost.py [--json figures/group_cost_cpu.json] [--repeats 3]

Run it on a quiet machine: it measures time.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import jax
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import benchmark as B  # noqa: E402 - the benchmark's sweep configuration, reused as is

import landscape as ls  # noqa: E402
from landscape.training import engine, memory  # noqa: E402
from landscape.training.memory import Layout  # noqa: E402

LAYOUTS = {  # name -> (members per group, groups side by side, concurrent calls)
    "groups of 8, 8 side by side, 2 calls per core (default)": Layout(8, 8, calls=2 * memory._cores()),
    "groups of 8, 8 side by side, 1 call per core": Layout(8, 8, calls=memory._cores()),
    "groups of 8, 8 side by side, one call": Layout(8, 8),
    "groups of 8, 8 side by side, 8 calls": Layout(8, 8, calls=8),
    "groups of 8, 2 side by side, one call": Layout(8, 2),
    "groups of 8, one after another, one call": Layout(8, 1),
    "groups of 16, 4 side by side, one call": Layout(16, 4),
    "groups of 32, 2 side by side, one call": Layout(32, 2),
    "groups of 4, 8 side by side, one call": Layout(4, 8),
    "all 64 in one vmapped batch": Layout(None),
}


def _run(kind: str, lay: Layout, repeats: int):
    _, _, data, model = B._jax_setup()
    steps, batch = (B.FULL_STEPS, None) if kind == "sweep" else (B.MB_STEPS, B.BATCH)
    original = engine.layout
    engine.layout = lambda num_devices, model=None: lay
    try:
        t0 = time.perf_counter()
        ens = B.lib_sweep(ls, model, data, steps, batch, jax.random.key(0))
        first = time.perf_counter() - t0
        best = float("inf")
        for _ in range(repeats):
            t0 = time.perf_counter()
            ens = B.lib_sweep(ls, model, data, steps, batch, jax.random.key(0))
            jax.block_until_ready(ens.params)
            best = min(best, time.perf_counter() - t0)
    finally:
        engine.layout = original
    return first, best, [np.asarray(a) for a in jax.tree_util.tree_leaves(ens.params)]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--json", default=None)
    p.add_argument("--repeats", type=int, default=3)
    args = p.parse_args()
    rows = []
    for kind in ("sweep", "minibatch"):
        reference = None
        for name, lay in LAYOUTS.items():
            first, best, leaves = _run(kind, lay, args.repeats)
            if reference is None:
                reference = (best, leaves)
            same = all(np.array_equal(a, b) for a, b in zip(leaves, reference[1]))
            diff = max(float(np.max(np.abs(a - b))) for a, b in zip(leaves, reference[1]))
            rows.append({"kind": kind, "layout": name, "group": lay.group, "side_by_side": lay.side_by_side,
                         "calls": lay.calls,
                         "seconds": best, "first_call_s": first, "speed_vs_default": reference[0] / best,
                         "bitwise_equal_to_default": same, "max_abs_param_difference": diff})
            print(f"{kind:9s} {name:56s} {best:6.2f} s (first {first:5.1f} s) {reference[0] / best:5.2f}× "
                  f"{'bitwise equal' if same else f'max |Δθ| {diff:.1e}'}", flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps({"rows": rows, "repeats": args.repeats}, indent=2))


if __name__ == "__main__":
    main()
