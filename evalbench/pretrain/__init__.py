"""``evalbench pretrain``: self-supervised (and supervised) training of the encoders ``run`` scores.

One file per method over a shared base (solo-learn's shape):

- :mod:`evalbench.pretrain.base`: the method interface, the training loop,
  optimiser, schedule, autocast and the loss curve;
- :mod:`evalbench.pretrain.state`: checkpoints and exact resume;
- :mod:`evalbench.pretrain.data` / :mod:`evalbench.pretrain.corpus`: where the
  audio comes from (a folder, a task's training split, or the embedded
  synthetic corpus) and the seeded crops and batches;
- :mod:`evalbench.pretrain.losses`, :mod:`evalbench.pretrain.heads`,
  :mod:`evalbench.pretrain.ema`: pure losses, heads, the EMA target;
- :mod:`evalbench.pretrain.export`: the trained network as an encoder that
  ``evalbench run`` scores, with its provenance and contamination fingerprint;
- :mod:`evalbench.pretrain.run`: the orchestration behind the CLI;
- one module per method: :mod:`evalbench.pretrain.byola`, :mod:`evalbench.pretrain.msn`,
  :mod:`evalbench.pretrain.clar`, :mod:`evalbench.pretrain.clmr`, :mod:`evalbench.pretrain.supervised`.

Recipes (published hyperparameters and presets) are YAML in ``encoders/recipes/``.
"""

from __future__ import annotations

import importlib

from evalbench.errors import UnknownNameError
from evalbench.registry import suggestion

METHODS = {
    "byola": "evalbench.pretrain.byola:ByolA",
    "clar": "evalbench.pretrain.clar:Clar",
    "clmr": "evalbench.pretrain.clmr:Clmr",
    "msn": "evalbench.pretrain.msn:Msn",
    "supervised": "evalbench.pretrain.supervised:Supervised",
}


def method_class(name: str) -> type:
    """The method class registered as ``name`` (imported on demand).

    Raises:
        UnknownNameError: With a close-match suggestion.
    """
    if name not in METHODS:
        raise UnknownNameError(f"unknown pretraining method '{name}'; {suggestion(name, sorted(METHODS))}")
    module, attr = METHODS[name].split(":")
    return getattr(importlib.import_module(module), attr)
