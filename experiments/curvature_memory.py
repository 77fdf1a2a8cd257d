"""Peak memory of the top Hessian eigenvalue of 16 members of a 784-128-10 network on 60,000
MNIST-shaped examples, against the size of the data set plus the members' parameters.

Each configuration runs in a fresh child process (so that one's peak does not hide
another's).  The child reports its resident memory

- before the data exist (JAX imported, its CPU client started): what the library adds to the
  caller's own arrays is measured from there;
- with the data and the members placed (the library's copy of the data, the parameters), freed
  heap returned to the system (``malloc_trim``) first, and the bytes of every device array
  then alive (``jax.live_arrays``): the resident figure also holds what JAX and XLA keep after
  their first compilations (about 40-65 MiB, the same with a tenth of the examples);
- its peak (``VmHWM``) over the first call (compilation included);
- the peak of a second call, after returning freed heap to the system (``malloc_trim``) and
  resetting the peak: the computation alone, its program compiled;

and XLA's own account of the compiled program (arguments, temporaries).  The data are random
(only the shapes matter for memory).

    python experiments/curvature_memory.py [--json figures/curvature_memory_cpu.json]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

N, D, HIDDEN, K, MEMBERS = 60_000, 784, 128, 10, 16
BATCHES = (None, 6000, 1000, 250)  # loss_fn(batch_size=): one evaluation, or batches of that many


def _peak_rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _current_rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _reset_peak() -> None:
    """Reset this process's peak resident memory (``VmHWM``) to its current size (Linux)."""
    Path("/proc/self/clear_refs").write_text("5")


def child(batch: int | None) -> None:
    import ctypes
    import time

    import jax
    import numpy as np

    import landscape as ls

    jax.block_until_ready(jax.jit(lambda a: a + 1)(np.ones(4, np.float32)))  # the CPU client started
    ctypes.CDLL("libc.so.6").malloc_trim(0)
    empty = _current_rss_mib()
    rng = np.random.default_rng(0)
    x = rng.random((N, D), dtype=np.float32)
    y = rng.integers(0, K, N).astype(np.int32)
    data = ls.data.from_arrays(x, y, x[:10], y[:10], num_classes=K)
    model = ls.models.for_loss(ls.MLP(hidden=(HIDDEN,), activation="relu").for_data(data), "cross_entropy")
    stacked = jax.vmap(model.init)(jax.random.split(jax.random.key(0), MEMBERS))
    loss = ls.models.loss_fn(model, data.train, "cross_entropy", batch_size=batch)
    jax.block_until_ready((stacked, loss))
    ctypes.CDLL("libc.so.6").malloc_trim(0)  # what is held, not heap freed by the members' initialisation
    base = _current_rss_mib()
    arrays_mib = sum(a.nbytes for a in jax.live_arrays()) / 2**20  # every device array the process holds
    user_mib = (x.nbytes + y.nbytes) / 2**20  # the caller's own arrays (the library keeps a view)
    data_mib = (x.nbytes + y.nbytes) / 2**20
    params_mib = sum(a.nbytes for a in jax.tree_util.tree_leaves(stacked)) / 2**20
    def top():
        return np.asarray(ls.hessian.top_eigenvalues(loss, stacked, 1, key=jax.random.key(1), stacked=True,
                                                     num_iters=10))

    t0 = time.perf_counter()
    first = top()  # compiles, then computes
    first_s = time.perf_counter() - t0
    peak = _peak_rss_mib()
    ctypes.CDLL("libc.so.6").malloc_trim(0)  # freed heap (compilation's) back to the system
    trimmed = _current_rss_mib()
    _reset_peak()  # the second call's peak: the computation alone, its program compiled
    t0 = time.perf_counter()
    again = top()
    seconds = time.perf_counter() - t0
    steady = _peak_rss_mib()
    assert np.array_equal(first, again)
    held = data_mib + params_mib
    xla = _xla_memory(loss, stacked)
    print(json.dumps({"batch_size": batch, "data_mib": data_mib, "params_mib": params_mib,
                      "rss_empty_mib": empty, "rss_before_mib": base,
                      "library_held_mib": base - empty - user_mib,
                      "library_held_over_data_and_params": (base - empty - user_mib) / held,
                      "device_arrays_mib": arrays_mib, "device_arrays_over_data_and_params": arrays_mib / held,
                      "peak_rss_mib": peak, "added_mib": peak - base,
                      "added_over_data_and_params": (peak - base) / held,
                      "peak_over_data_and_params": (peak - empty - user_mib) / held,
                      "rss_trimmed_mib": trimmed,
                      "steady_peak_rss_mib": steady, "steady_added_mib": steady - trimmed,
                      "steady_added_over_data_and_params": (steady - trimmed) / held,
                      "xla_argument_mib": xla["argument"], "xla_temp_mib": xla["temp"],
                      "xla_over_data_and_params": (xla["argument"] + xla["temp"]) / held,
                      "first_call_s": first_s, "seconds": seconds, "median_top": float(np.median(first))}))


def _xla_memory(loss, stacked) -> dict:
    """XLA's account of the compiled top-eigenvalue program: its arguments and temporaries (MiB)."""
    import jax
    import jax.numpy as jnp

    import landscape as ls
    from landscape.core.programs import split
    from landscape.curvature import stacked as st

    structure, arrays, _ = split(loss)
    n = jax.tree_util.tree_leaves(stacked)[0].shape[0]
    opts = tuple(sorted({"select": None, "curvature": "hessian", "k": 1, "num_iters": 10}.items()))
    size = sum(a.size for a in jax.tree_util.tree_leaves(stacked)) // n
    run = st._cached(ls.hessian.top_eigenvalues, structure, opts, st.member_group(n, False, size))
    info = run.lower(arrays, stacked, jax.random.key(1), jnp.arange(n)).compile().memory_analysis()
    return {"argument": info.argument_size_in_bytes / 2**20, "temp": info.temp_size_in_bytes / 2**20}


def main() -> None:
    if len(sys.argv) == 3 and sys.argv[1] == "--_child":
        child(None if sys.argv[2] == "none" else int(sys.argv[2]))
        return
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--json", default=None)
    args = p.parse_args()
    rows = []
    for batch in BATCHES:
        out = subprocess.run([sys.executable, __file__, "--_child", "none" if batch is None else str(batch)],
                             check=True, capture_output=True, text=True).stdout
        row = json.loads(out.strip().splitlines()[-1])
        rows.append(row)
        print(f"batch_size={str(batch):>5}: data + params {row['data_mib'] + row['params_mib']:.0f} MiB; "
              f"the library holds {row['library_held_mib']:.0f} MiB besides the caller's arrays "
              f"({row['library_held_over_data_and_params']:.2f}×; device arrays {row['device_arrays_mib']:.0f} MiB = "
              f"{row['device_arrays_over_data_and_params']:.2f}×); peak RSS {row['peak_rss_mib']:.0f} MiB = "
              f"{row['peak_over_data_and_params']:.2f}× data + params over the empty process "
              f"(added by the first call {row['added_mib']:.0f} MiB, compilation included); "
              f"compiled, again: added {row['steady_added_mib']:.0f} MiB = "
              f"{row['steady_added_over_data_and_params']:.2f}×; XLA: arguments {row['xla_argument_mib']:.0f} + "
              f"temporaries {row['xla_temp_mib']:.0f} MiB = {row['xla_over_data_and_params']:.2f}×; "
              f"{row['first_call_s']:.1f} s / {row['seconds']:.1f} s", flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps({"rows": rows}, indent=2))


if __name__ == "__main__":
    main()
