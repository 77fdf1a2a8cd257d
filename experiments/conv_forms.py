"""The two forms of a lowered convolution on a CPU: im2col patches against the banded kernel
(issue #32, item 1).

:func:`landscape.core.conv_lowering.conv_as_matmul` computes a convolution as a matrix product
in one of two forms: ``"patches"`` (im2col, one slice of the input per kernel offset) or
``"banded"`` (slices along the leading spatial axes only, the last axis folded into a
block-Toeplitz kernel matrix: a ``K_w`` times smaller left matrix for ``W / K_w`` times the
multiply-adds).  :func:`~landscape.core.conv_lowering.banded_pays` picks one by the image's width
in kernel widths; this script measures both on one jitted forward and backward pass (the
gradients of a scalar of the output with respect to input and kernel) over widths, channels
and kernel sizes, and says which the rule picks.  Each case has about two million input and
output elements, so each pass is long enough to time.

    python experiments/conv_forms.py [--json figures/conv_forms_cpu.json] [--repeats 5]

Run it on a quiet machine: it measures time.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import jax
import jax.numpy as jnp
from jax import lax

from landscape.core.conv_lowering import banded_pays, conv_as_matmul

#: (width = height, input channels, output channels, kernel size): the digits' layers (8×8 and
#: 4×4, 1 → 8 → 16), the ResNet's, and CIFAR-sized images.
CASES = [(8, 1, 8, 3), (8, 8, 16, 3), (4, 8, 16, 3), (8, 16, 16, 3), (8, 64, 64, 3), (12, 8, 8, 3),
         (16, 3, 16, 3), (16, 16, 16, 3), (16, 16, 32, 3), (16, 64, 64, 3), (32, 3, 16, 3), (32, 16, 16, 3),
         (8, 8, 8, 5), (16, 8, 8, 5)]


def _seconds(fn, args, repeats: int) -> float:
    jax.block_until_ready(fn(*args))  # compile
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        jax.block_until_ready(fn(*args))
        best = min(best, time.perf_counter() - t0)
    return best


def measure(width: int, c_in: int, c_out: int, kernel: int, repeats: int) -> dict:
    """Forward and backward time of one ``SAME`` convolution in both forms."""
    n = max(8, int(2e6 // (width * width * max(c_in, c_out))))
    x = jax.random.normal(jax.random.key(0), (n, width, width, c_in))
    k = jax.random.normal(jax.random.key(1), (kernel, kernel, c_in, c_out))
    dn = lax.conv_dimension_numbers(x.shape, k.shape, ("NHWC", "HWIO", "NHWC"))
    pad = ((kernel // 2, (kernel - 1) // 2),) * 2
    row = dict(width=width, c_in=c_in, c_out=c_out, kernel=kernel, examples=n,
               rule_picks="banded" if banded_pays(x.shape, k.shape, (1, 1), pad, (1, 1)) else "patches")
    for form in ("patches", "banded"):
        def loss(x, k, form=form):
            out = conv_as_matmul(x, k, window_strides=(1, 1), padding=pad, lhs_dilation=None, rhs_dilation=(1, 1),
                                 dimension_numbers=dn, form=form)
            return jnp.sum(jnp.tanh(out))

        row[f"{form}_ms"] = 1e3 * _seconds(jax.jit(jax.grad(loss, (0, 1))), (x, k), repeats)
    row["banded_speedup"] = row["patches_ms"] / row["banded_ms"]
    return row


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--json", type=Path, help="write the rows here")
    p.add_argument("--repeats", type=int, default=5)
    args = p.parse_args(argv)
    rows = []
    print(f"{'W':>3} {'C':>3} {'O':>3} {'K':>2} {'N':>6} {'patches ms':>11} {'banded ms':>10} {'speed-up':>9}  rule")
    for case in CASES:
        r = measure(*case, repeats=args.repeats)
        rows.append(r)
        print(f"{r['width']:>3} {r['c_in']:>3} {r['c_out']:>3} {r['kernel']:>2} {r['examples']:>6} {r['patches_ms']:>11.2f} "
              f"{r['banded_ms']:>10.2f} {r['banded_speedup']:>8.2f}×  {r['rule_picks']}", flush=True)
    if args.json:
        meta = dict(machine=platform.processor() or platform.machine(), backend=jax.default_backend(),
                    devices=[str(d) for d in jax.devices()], jax=jax.__version__,
                    date=time.strftime("%Y-%m-%d"))
        args.json.write_text(json.dumps(dict(meta=meta, rows=rows), indent=1) + "\n")


if __name__ == "__main__":
    main()
