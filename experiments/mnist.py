"""Study 5 — study 1 on MNIST through tensorflow-datasets: a 784-16-16-10 sigmoid network.

The same pipeline as ``digits_classic.py`` (histogram, training curves, plane through three
minima with their paths, lines between pairs, barriers and basins before/after alignment)
on the 60,000 MNIST training images.  Full-batch descent over 60,000 images is slow on a
CPU, so this study uses minibatches of 128; the barrier comparison is limited to 16 seeds
(each pair is evaluated on the whole training set).  It needs the data set prepared once:

    landscape prepare mnist                    # needs internet, once
    python experiments/mnist.py                # minutes on a GPU; an estimated 20-30 minutes on 2 CPU cores
    python experiments/mnist.py --quick        # a smoke test (also runs under tfds mock data)

Figures: ``figures/mnist_*.png``; results under ``runs/mnist``.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from digits_classic import CONFIG as DIGITS  # noqa: E402
from digits_classic import run_classic  # noqa: E402
from study import Study, parser  # noqa: E402

# --- configuration -------------------------------------------------------------------------
CONFIG = {**DIGITS, "dataset": "mnist", "batch_size": 128, "steps": 6000, "seeds": 64, "log_every": 100,
          "snapshot_every": 500, "pairs": 16, "compare_limit": 16}
# (the quick form runs on tensorflow-datasets' random mock images in the tests: nothing can be
# learned there, so its members are compared anyway)
QUICK = {**CONFIG, "batch_size": 8, "steps": 20, "seeds": 4, "log_every": 5, "snapshot_every": 10, "pairs": 2,
         "compare_limit": 3, "include_unlearned": True}


def main(argv=None) -> dict:
    p = parser(__doc__, "mnist")
    p.add_argument("--data-dir", default=None, help="tensorflow-datasets directory (default: tfds's own)")
    args = p.parse_args(argv)
    cfg = {**(QUICK if args.quick else CONFIG), "data_dir": args.data_dir}
    return run_classic(Study("mnist", args, cfg))


if __name__ == "__main__":
    main()
