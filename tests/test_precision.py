"""The float32 matmul arithmetic: set, reported, recorded, and part of a result's provenance."""

from __future__ import annotations

import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import landscape as ls
from landscape import precision
from landscape.store import results

from .clirun import run


def test_names_are_checked_and_the_setting_reaches_jax():
    with pytest.raises(ls.ConfigError, match="matmul precision must be one of"):
        precision.set_matmul_precision("fp16")
    before = jax.config.jax_default_matmul_precision
    try:
        precision.set_matmul_precision("tensorfloat32")
        assert jax.config.jax_default_matmul_precision == "tensorfloat32"
        text = jax.jit(jnp.dot).lower(jnp.ones((2, 2)), jnp.ones((2, 2))).as_text()
        assert "HIGH" in text or "tf32" in text.lower()  # the traced product carries the setting
        precision.set_matmul_precision("default")
        assert jax.config.jax_default_matmul_precision is None
    finally:
        jax.config.update("jax_default_matmul_precision", before)


def test_a_cpu_reports_exact_float32_whatever_the_setting():
    a = np.random.default_rng(0).standard_normal((64, 64)).astype(np.float32)
    exact = a.astype(np.float64) @ a.astype(np.float64)
    for name in ("tensorfloat32", "bfloat16", None):
        with jax.default_matmul_precision(name):
            assert precision.matmul_precision() == "float32"
            # and the products really are float32's: TF32 would be ~1e-3 off
            got = np.asarray(jax.jit(jnp.dot)(a, a))
            np.testing.assert_allclose(got, exact, rtol=2e-5, atol=2e-4)
    assert ls.io.environment()["matmul_precision"] == "float32"


def test_an_inexact_precision_enters_the_provenance(trained, monkeypatch):
    """A result computed with exact float32 is not reused for a TF32 computation (and vice versa)."""
    out, _ = trained
    settings = {"kind": "probe", "grid": 3}
    exact = results.provenance(out, settings)
    assert "matmul_precision" not in exact  # results of earlier versions stay current on a CPU
    monkeypatch.setattr(precision, "matmul_precision", lambda: "tensorfloat32")
    tf32 = results.provenance(out, settings)
    assert tf32["matmul_precision"] == "tensorfloat32"
    assert results.differences(exact, tf32) == ["matmul_precision"]


def test_the_command_takes_the_precision_and_refuses_a_bad_one(trained):
    out, _ = trained
    r = run("surface", str(out), "--matmul-precision", "fp8")
    assert r.returncode == 2 and "invalid choice: 'fp8'" in r.stderr and len(r.stderr.strip().splitlines()) == 1
    code = ("import jax, sys; from landscape.cli import build_parser, _start_devices; "
            "a = build_parser().parse_args(sys.argv[1:]); _start_devices(a); "
            "print(jax.config.jax_default_matmul_precision)")
    for argv, want in ((["surface", str(out)], "float32"),
                       (["surface", str(out), "--matmul-precision", "tensorfloat32"], "tensorfloat32")):
        r = subprocess.run([sys.executable, "-c", code, *argv], capture_output=True, text=True,
                           stdin=subprocess.DEVNULL, timeout=120)
        assert r.returncode == 0, r.stderr
        assert r.stdout.split()[-1] == want
