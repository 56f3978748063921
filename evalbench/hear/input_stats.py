"""Where a HEAR model's input statistics come from: :func:`pretrain_statistics` and the load-time rules.

**Input statistics** (BYOL-A and MSN, ``needs_fit``).  ``evalbench run`` fits
the scalar log-mel mean and std on each task's training clips; HEAR gives a
module no training pass.  The statistics are therefore chosen at load time,
first match wins:

1. ``norm_mean=`` and ``norm_std=`` given to :func:`~evalbench.hear.load_model` (e.g. the
   ``fitted`` values of an evalbench run record; hear-eval-kit:
   ``--model-options '{"norm_mean": -4.1, "norm_std": 3.4}'``);
2. statistics fixed by the spec itself (``options.norm_mean``/``norm_std``);
3. ``norm="auto"`` or ``"pretrain"``: the statistics ``evalbench pretrain``
   normalised its training input with (``fitted`` in ``state.pt`` beside the
   checkpoint, when its data fingerprint matches the weights'): what the
   network was trained on;
4. otherwise (``norm="first_call"``, or ``"auto"`` without the above, e.g.
   random twins and the official BYOL-A weights): fitted on the audio of the
   first :func:`~evalbench.hear.get_scene_embeddings` / :func:`~evalbench.hear.get_timestamp_embeddings` call
   that holds any non-zero sample, by the adapter's own ``fit``, and then
   **frozen** for the model's lifetime.  Calls of pure digital silence before
   it (a harness's probe, such as evalbench's own ``hear`` adapter's) are
   embedded with statistics of that silence and do not freeze them.
   :func:`~evalbench.hear.fit_input_statistics` fits them explicitly on audio of your choice.

Consequences: under (3) and (4) the embeddings of a ``needs_fit`` encoder
differ from ``evalbench run``'s, whose statistics are per task, so HEAR scores
of BYOL-A/MSN are not ``run`` scores.  Under (4) they depend on what the
harness sends first: hear-eval-kit loads one model for all tasks, so the first
batch of the first task sets the statistics for every task, and its batches
are small (21 clips of 5 s at 16 kHz under its batch heuristic).  Pass ``norm_mean``/``norm_std``
whenever a comparable number is needed.  Under (1)–(3) every embedding is a
pure function of its own audio.  ``model.norm_source`` says which rule applied.
"""

from __future__ import annotations

import dataclasses
import logging
from typing import Any

import torch

from evalbench.errors import EvalbenchError
from evalbench.hear.naming import STATE

NORM_POLICIES = ("auto", "pretrain", "first_call")

log = logging.getLogger(__package__)  # "evalbench.hear", the logger name the package has always used


def _fits(spec: Any) -> bool:
    """The spec's adapter fits input statistics on training audio (before options fix them)."""
    return bool(getattr(spec.adapter_class(), "needs_fit", False))


def pretrain_statistics(spec: Any) -> dict[str, float] | None:
    """``{"norm_mean", "norm_std"}`` that ``evalbench pretrain`` normalised its training input with, if known.

    Read from ``state.pt`` beside the spec's checkpoint (memory-mapped: only
    the small entries are read), and used only when the state's data
    fingerprint equals the one recorded in the checkpoint.
    """
    weights = spec.checkpoint_path()
    state_path = weights.parent / STATE if weights is not None else None
    if state_path is None or not state_path.is_file() or not weights.is_file():
        return None
    try:
        state = torch.load(state_path, map_location="cpu", weights_only=True, mmap=True)
        meta = torch.load(weights, map_location="cpu", weights_only=True, mmap=True)
    except Exception as exc:  # unreadable or unsafe file: no stored statistics
        log.warning(
            "%s or %s: not readable (%s); the pretraining statistics are not used",
            state_path,
            weights,
            type(exc).__name__,
        )
        return None
    fitted = state.get("fitted") if isinstance(state, dict) else None
    if not isinstance(fitted, dict) or not {"norm_mean", "norm_std"} <= set(fitted):
        return None
    data = state.get("data")
    state_print = data.get("fingerprint") if isinstance(data, dict) else None
    weights_print = meta.get("meta", {}).get("data") if isinstance(meta, dict) else None
    if state_print is None or state_print != weights_print:
        log.warning(
            "%s: its data fingerprint differs from %s's; its pretraining statistics are not used", state_path, weights
        )
        return None
    return {"norm_mean": float(fitted["norm_mean"]), "norm_std": float(fitted["norm_std"])}


def _with_statistics(spec: Any, norm: str, norm_mean: float | None, norm_std: float | None) -> tuple[Any, str | None]:
    """``spec`` with fixed input statistics when the rules give them, and the rule's description.

    Returns ``(spec, source)``; ``source`` is None for encoders that fit
    nothing and ``"first_call"`` when the statistics remain to be fitted.
    """
    if norm not in NORM_POLICIES:
        raise EvalbenchError(f"load_model: norm='{norm}': use one of {', '.join(NORM_POLICIES)}")
    if (norm_mean is None) != (norm_std is None):
        raise EvalbenchError("load_model: give norm_mean and norm_std together")
    if not _fits(spec):
        if norm_mean is not None:
            raise EvalbenchError(
                f"load_model: encoder '{spec.name}' (adapter {spec.adapter}) fits no input statistics; "
                "norm_mean/norm_std do not apply"
            )
        return spec, None
    if norm_mean is not None:
        stats, source = {"norm_mean": float(norm_mean), "norm_std": float(norm_std)}, "load_model(norm_mean, norm_std)"
    elif spec.options.get("norm_mean") is not None:
        return spec, "the spec's options"
    elif norm != "first_call" and (stats := pretrain_statistics(spec)) is not None:
        source = f"evalbench pretrain ({spec.checkpoint_path().parent / STATE})"
    elif norm == "pretrain":
        raise EvalbenchError(
            f"load_model: norm='pretrain': encoder '{spec.name}' has no pretraining statistics (no {STATE} with "
            "matching data beside its checkpoint); give norm_mean and norm_std, or norm='first_call'"
        )
    else:
        return spec, "first_call"
    spec = dataclasses.replace(spec, options={**spec.options, **stats})
    spec.typed_options()  # validates the values
    return spec, source
