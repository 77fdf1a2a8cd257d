"""Check `landscape` on an accelerator: the test suite on that backend, then the benchmark.

One command, for a machine with JAX for CUDA (or a TPU) and perhaps no internet:

    python experiments/accelerator_check.py --out accel-check

1. prints the devices JAX sees (and stops if it sees only a CPU, unless ``--allow-cpu``);
2. runs the default test suite on that backend (``--slow`` adds the slow suite), its log in
   ``OUT/tests.log``;
3. runs ``experiments/benchmark.py --json OUT/benchmark_<backend>.json`` with the large-ensemble
   section (1,000 / 4,000 / 16,000 seeds of the digits network, a 201×201 surface, the Hessian
   of 1,000 seeds), every rate as a fraction of the device's own matmul peak measured in the
   same run, its log in ``OUT/benchmark.log``.

``--quick`` runs tiny sizes of everything (and ``--allow-cpu``): the test suite checks the
script itself that way on a CPU.  Needs the test extras (pytest, hypothesis, pytest-xdist,
pytest-timeout, pillow) and tensorflow-datasets; on an offline machine bring them as wheels
(README, "Running on a GPU").  Exit status: 0 when both steps passed, 1 otherwise.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
NEEDED = ("pytest", "hypothesis", "xdist", "pytest_timeout", "PIL", "tensorflow_datasets")


def _devices(env: dict) -> dict:
    code = ("import json, jax; d = jax.devices(); print(json.dumps({'backend': jax.default_backend(), "
            "'devices': [str(x) for x in d], 'kind': d[0].device_kind, 'count': len(d), 'jax': jax.__version__}))")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def _run(cmd: list[str], env: dict, log: Path) -> tuple[int, float]:
    """Run ``cmd``, its output to the terminal and to ``log``; (exit status, seconds)."""
    t0 = time.time()
    with open(log, "w") as f:
        proc = subprocess.Popen(cmd, env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                stdin=subprocess.DEVNULL)
        for line in proc.stdout:
            sys.stdout.write(line)
            f.write(line)
        proc.wait()
    return proc.returncode, time.time() - t0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default="accel-check", help="directory for the logs and the benchmark JSON")
    p.add_argument("--quick", action="store_true", help="tiny sizes (and --allow-cpu): checks the script itself")
    p.add_argument("--allow-cpu", action="store_true", help="go on when JAX sees only a CPU")
    p.add_argument("--slow", action="store_true", help="also run the slow test suite")
    p.add_argument("--workers", type=int, default=4, help="pytest-xdist workers sharing the device (default: 4)")
    p.add_argument("--sections", default=None, help="benchmark sections (default: all, with the large ensembles)")
    p.add_argument("--skip-tests", action="store_true", help="benchmark only")
    args = p.parse_args(argv)
    out = Path(args.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    missing = [m for m in NEEDED if importlib.util.find_spec(m) is None]
    if missing and not args.skip_tests:
        print(f"missing Python packages: {', '.join(missing)}; install the test extras "
              "(pip install -e '.[test]', or the wheels as the README's 'Running on a GPU' says)", file=sys.stderr)
        return 2
    env = {k: v for k, v in os.environ.items() if k != "JAX_PLATFORMS"}  # the accelerator, not the tests' CPU default
    env.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")  # several test workers share one device
    env["PYTHONUNBUFFERED"] = "1"
    info = _devices(env)
    print(f"JAX {info['jax']}: backend {info['backend']}, {info['count']} × {info['kind']}", flush=True)
    if info["backend"] == "cpu" and not (args.allow_cpu or args.quick):
        print("JAX sees no accelerator (install jax[cuda12] or jax[tpu], or pass --allow-cpu)", file=sys.stderr)
        return 2
    env["JAX_PLATFORMS"] = info["backend"]
    summary = {"device": info, "date": time.strftime("%Y-%m-%d %H:%M")}
    status = 0
    if not args.skip_tests:
        test_cmd = [sys.executable, "-m", "pytest", "-n", str(args.workers)]
        if importlib.util.find_spec("pytest_benchmark") is not None:
            # its warning that xdist disables it would be an error under the suite's warning filter
            test_cmd += ["-p", "no:benchmark"]
        if args.quick:  # the script's own check: a few fast test files
            test_cmd += ["tests/test_tree.py", "tests/test_directions.py"]
        rc, secs = _run(test_cmd, env, out / "tests.log")
        summary["tests"] = {"exit_status": rc, "seconds": secs}
        status |= rc != 0
        if args.slow:
            rc, secs = _run(test_cmd + ["-m", "slow"], env, out / "tests_slow.log")
            summary["tests_slow"] = {"exit_status": rc, "seconds": secs}
            status |= rc != 0
    bench = out / f"benchmark_{info['backend']}.json"
    sections = args.sections or "matmul,sweep,minibatch,cnn,surface,surface784,hessian,layers,scaling,large,ttr"
    bench_cmd = [sys.executable, str(ROOT / "experiments" / "benchmark.py"), "--json", str(bench), "--sections", sections]
    if args.quick:
        bench_cmd.append("--quick")
    rc, secs = _run(bench_cmd, env, out / "benchmark.log")
    summary["benchmark"] = {"exit_status": rc, "seconds": secs, "json": str(bench)}
    status |= rc != 0
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    print(f"\n{'passed' if status == 0 else 'FAILED'}: {json.dumps(summary)}")
    return int(status)


if __name__ == "__main__":
    sys.exit(main())
