"""Curvature tracked inside the training loop: every few steps, the top Hessian eigenvalues
(Lanczos) and optionally the Hessian trace (Hutchinson) of every member's training loss, computed
in the same compiled program as the steps (the edge of stability, Cohen et al. 2021).

What is tracked is the Hessian of the training loss in evaluation mode (running statistics for
a model with BatchNorm) on the whole training set or on a fixed subset of it, at the member's
parameters after the step.  Member ``i``'s random vectors at step ``s`` come from
``fold_in(track_key, s)`` with ``track_key = fold_in(init_key, 1)`` (:func:`member_keys`): a
member's values depend only on ``(key, seed, learning rate)``, never on its sweep.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np

from ..core.errors import ConfigError
from ..curvature.spectra import lanczos_steps, top_eigenvalues, trace

__all__ = ["Tracking", "Tracked", "member_curvature"]


@dataclasses.dataclass(frozen=True)
class Tracking:
    """What :func:`~landscape.train.train_ensemble` tracks during training (``track=``).

    Attributes:
      every: track every this many steps (a multiple of ``log_every``), at step 0 and at the
        last step too.
      top: how many of the largest Hessian eigenvalues (Lanczos; Ghorbani et al. 2019).
      trace: also Hutchinson's estimate of the Hessian trace (Hutchinson 1990), with its
        standard error.
      subset: the training examples the Hessian is taken on: ``None`` every one; a count ``N``
        the first ``N`` (the training split is shuffled once when a data set is loaded); or
        explicit indices.
      num_iters: Lanczos iterations (default ``max(2·top + 20, 40)``, at most the number of
        parameters).
      probes: Rademacher probes of the trace.

    Examples:
      >>> t = ls.train.Tracking(every=20, top=2, trace=True)
      >>> t.every, t.top, t.trace, t.to_dict()["subset"]
      (20, 2, True, None)
    """

    every: int
    top: int = 1
    trace: bool = False
    subset: int | Sequence[int] | None = None
    num_iters: int | None = None
    probes: int = 20

    def __post_init__(self):
        for name in ("every", "top", "probes"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
                raise ConfigError(f"tracking: {name} must be a positive integer, got {v!r}")
        if self.num_iters is not None and (not isinstance(self.num_iters, (int, np.integer)) or self.num_iters < 1):
            raise ConfigError(f"tracking: num_iters must be a positive integer, got {self.num_iters!r}")
        if self.subset is not None and not isinstance(self.subset, (int, np.integer)):
            idx = tuple(int(i) for i in np.asarray(self.subset).ravel())
            if not idx:
                raise ConfigError("tracking: subset names no example")
            object.__setattr__(self, "subset", idx)  # hashable: the spec keys the compiled programs

    def indices(self, n_train: int) -> np.ndarray | None:
        """The tracked examples' indices into the training split (``None``: all of them).

        Args:
          n_train: the number of training examples.

        Returns:
          ``(N,)`` int indices, or ``None``.

        Raises:
          ConfigError: a count or index outside the training set, or a repeated index.
        """
        if self.subset is None:
            return None
        if isinstance(self.subset, (int, np.integer)):
            if not 1 <= self.subset <= n_train:
                raise ConfigError(f"tracking: subset must lie in [1, {n_train}] examples, got {self.subset}")
            return np.arange(int(self.subset))
        idx = np.asarray(self.subset, np.int64)
        if idx.min() < 0 or idx.max() >= n_train:
            raise ConfigError(f"tracking: subset indices must lie in [0, {n_train}), got {idx.min()}..{idx.max()}")
        if np.unique(idx).size != idx.size:
            raise ConfigError("tracking: subset indices must be distinct")
        return idx

    def num_lanczos(self, num_params: int) -> int:
        """The Lanczos iterations used for ``num_params`` parameters.

        Args:
          num_params: the model's parameter count ``P``.

        Returns:
          ``min(num_iters or max(2·top + 20, 40), P)``.

        Raises:
          ConfigError: more eigenvalues asked than the model has parameters.
        """
        if self.top > num_params:
            raise ConfigError(f"tracking: top={self.top} eigenvalues of a model with {num_params} parameters")
        return lanczos_steps(num_params, self.top, self.num_iters)

    def to_dict(self) -> dict:
        """JSON-ready settings (recorded with the run)."""
        subset = self.subset if self.subset is None or isinstance(self.subset, (int, np.integer)) else list(self.subset)
        return {"every": int(self.every), "top": int(self.top), "trace": bool(self.trace), "subset": subset,
                "num_iters": self.num_iters, "probes": int(self.probes)}

    @classmethod
    def from_dict(cls, d: dict) -> Tracking:
        """The spec :meth:`to_dict` wrote.

        Args:
          d: the dict.

        Returns:
          the :class:`Tracking`.
        """
        return cls(**{f.name: d[f.name] for f in dataclasses.fields(cls) if f.name in d})


@dataclasses.dataclass(frozen=True, eq=False)
class Tracked:
    """Curvature tracked during training.

    Attributes:
      step: ``(T,)`` the tracked steps (0 = before training).
      top: ``(M, T, K)`` the ``K`` largest Hessian eigenvalues, descending, per member and step.
      trace: ``(M, T)`` Hutchinson's trace estimate, or ``None`` when not tracked.
      trace_stderr: ``(M, T)`` its standard error, or ``None``.

    Examples:
      >>> data = ls.data.blobs(num_train=64, num_test=32)
      >>> ens = ls.train_ensemble(ls.MLP(hidden=(4,)), data, key=jax.random.key(0), seeds=2, loss="cross_entropy",
      ...                         steps=20, log_every=10, track=ls.train.Tracking(every=10),
      ...                         execution=ls.Execution(progress=False))
      >>> ens.tracked.step.tolist(), ens.tracked.top.shape          # (members, tracked steps, top)
      ([0, 10, 20], (2, 3, 1))
    """

    step: np.ndarray
    top: np.ndarray
    trace: np.ndarray | None = None
    trace_stderr: np.ndarray | None = None

    def arrays(self) -> dict[str, np.ndarray]:
        """The fields that are set, as ``{name: array}``."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if getattr(self, f.name) is not None}


def member_curvature(loss_of_params, spec: Tracking, num_params: int):
    """One member's tracked curvature as a pure function (vmapped over members by the engine).

    Args:
      loss_of_params: ``(params, model_state, x, y) -> scalar``, the member's training loss in
        evaluation mode.
      spec: the :class:`Tracking`.
      num_params: the model's parameter count.

    Returns:
      ``fn(params, model_state, key, x, y) -> {"top": (K,), ["trace", "trace_stderr"]}``;
      ``key`` is the member's key of this step.

    Examples:
      >>> quad = lambda p, s, x, y: 0.5 * jnp.sum(x * p["w"] ** 2)     # Hessian diag(x)
      >>> fn = ls.train.member_curvature(quad, ls.train.Tracking(every=1, top=2, trace=True, probes=4), 3)
      >>> out = fn({"w": jnp.ones(3)}, {}, jax.random.key(0), jnp.array([3.0, 2.0, 1.0]), None)
      >>> out["top"].round(4).tolist(), round(float(out["trace"]), 4)
      ([3.0, 2.0], 6.0)
    """
    iters = spec.num_lanczos(num_params)

    def fn(params, model_state, key, x, y):
        def loss(p):
            return loss_of_params(p, model_state, x, y)

        k_top, k_trace = jax.random.split(key)
        out = {"top": top_eigenvalues(loss, params, spec.top, key=k_top, num_iters=iters)}
        if spec.trace:
            t = trace(loss, params, key=k_trace, num_probes=spec.probes)
            out["trace"], out["trace_stderr"] = t["trace"], t["stderr"]
        return out

    return fn

