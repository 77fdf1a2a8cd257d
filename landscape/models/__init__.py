"""Models: the built-in Flax networks, any model a researcher brings, and the losses.

The Flax modules live here and nowhere else: the rest of the library sees only the pure
functions ``model.init(key) -> params`` and ``model.apply(params, x) -> outputs`` on plain
nested-dict parameter pytrees ``{"Dense_0": {"kernel": (D, H1), "bias": (H1,)}, ...}``
(kernels ``(in, out)`` as everywhere in Flax), plus the state protocol (``init_state``,
``apply_train``, ``apply_eval``) that BatchNorm needs.  One concept per module:

* :mod:`~landscape.models.base` — activations, initialisers, what the built-ins share;
* :mod:`~landscape.models.mlp`, :mod:`~landscape.models.cnn`, :mod:`~landscape.models.resnet`
  — the built-in networks;
* :mod:`~landscape.models.adapters` — any Flax Linen module, NNX model or ``(init, apply)`` pair;
* :mod:`~landscape.models.resolve` — :func:`as_model`, built-ins from a run's description;
* :mod:`~landscape.models.statistics` — BatchNorm statistics at a point of parameter space;
* :mod:`~landscape.models.noise` — random layers (dropout) in training mode with a fixed noise key;
* :mod:`~landscape.models.losses` — ``mse``, cross-entropy, accuracy, loss functions of the
  parameters;
* :mod:`~landscape.models.permutation` — hidden-unit permutations: a model's permutation
  structure, permuting, weight matching (``ls.permutation``);
* :mod:`~landscape.models.spec_inference` — the permutation structure read from a traced model
  (``ls.permutation.infer_spec``);
* :mod:`~landscape.models.model_file` — a researcher's model from a Python file (:func:`from_file`).

Everything public is importable from ``landscape.models`` itself.
"""

from __future__ import annotations

from .adapters import TRAIN_FLAGS, FlaxModel, is_module_instance, stream_key
from .base import ACTIVATIONS, INITIALIZERS
from .cnn import CNN
from .losses import (
    LOSSES,
    LOSS_NAMES,
    BatchedLoss,
    LossOf,
    LossParts,
    ModelLoss,
    MLPMetrics,
    ModelMetrics,
    accuracy,
    cross_entropy,
    for_loss,
    loss_name,
    loss_fn,
    metrics,
    metrics_fn,
    minibatch_loss,
    mse,
    output_loss,
    per_example_loss,
)
from .mlp import MLP
from .model_file import from_file
from .resnet import ResNet
from .resolve import BUILTIN, as_model, convolutional, lowered, model_from_dict
from .noise import with_noise
from .statistics import STATISTICS, population_statistics, running_average_rates, with_statistics

__all__ = [
    "ACTIVATIONS",
    "INITIALIZERS",
    "LOSSES",
    "LOSS_NAMES",
    "loss_name",
    "MLP",
    "CNN",
    "BUILTIN",
    "model_from_dict",
    "FlaxModel",
    "as_model",
    "is_module_instance",
    "convolutional",
    "lowered",
    "ResNet",
    "STATISTICS",
    "TRAIN_FLAGS",
    "with_statistics",
    "with_noise",
    "stream_key",
    "population_statistics",
    "running_average_rates",
    "mse",
    "cross_entropy",
    "accuracy",
    "output_loss",
    "for_loss",
    "metrics",
    "loss_fn",
    "LossParts",
    "ModelLoss",
    "LossOf",
    "BatchedLoss",
    "minibatch_loss",
    "per_example_loss",
    "metrics_fn",
    "MLPMetrics",
    "ModelMetrics",
    "from_file",
]
