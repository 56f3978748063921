"""The HEAR API functions: :func:`load_model`, :func:`get_scene_embeddings`, :func:`get_timestamp_embeddings`.

**What is computed.**  The encoder is built by the code ``evalbench run``
uses (:func:`~evalbench.embed.encoder.load_encoder_model`; the checkpoint's
SHA-256 is verified against the spec), on float32.  Scene embeddings are
:meth:`~evalbench.embed.encoder.LoadedEncoder.pooled`: the spec's pooling of
the adapter's frames, exactly ``run``'s clip vector for the same audio.
Timestamp embeddings are the adapter's own frames (``embed_dim`` wide; every
frame the adapter marks valid for the clip, which for one length is the same
count for every sound), stamped with frame centres in milliseconds
(:func:`~evalbench.hear.frames.frame_times`, per adapter; the rules are tabled
in :mod:`evalbench.hear.frames`).  Which spec a path names is
:mod:`evalbench.hear.naming`; where BYOL-A/MSN input statistics come from is
:mod:`evalbench.hear.input_stats`.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from evalbench.errors import EvalbenchError
from evalbench.hear.frames import frame_times
from evalbench.hear.input_stats import _with_statistics
from evalbench.hear.model import EvalbenchHearModel
from evalbench.hear.naming import resolve_spec


def load_model(
    model_file_path: str = "",
    encoder: str | None = None,
    *,
    norm: str = "auto",
    norm_mean: float | None = None,
    norm_std: float | None = None,
    encoders_dir: str | None = None,
    device: str | None = None,
) -> EvalbenchHearModel:
    """Build an evalbench encoder as a HEAR model (rules: ``hear.naming``, ``hear.input_stats``, ``hear.frames``).

    Args:
        model_file_path: An encoder YAML, an ``evalbench pretrain`` output
            folder, a checkpoint file, or ``""`` (the spec ``encoder`` names).
        encoder: Spec name (``encoders list``); with a checkpoint or folder,
            the family spec whose weights it replaces.  Default
            ``$EVALBENCH_HEAR_ENCODER`` when ``model_file_path`` is empty.
        norm: ``auto``, ``pretrain`` or ``first_call``: where BYOL-A/MSN input
            statistics come from when ``norm_mean``/``norm_std`` are not given
            (ignored for encoders that fit none).
        norm_mean: Fixed log-mel mean (with ``norm_std``).
        norm_std: Fixed log-mel standard deviation.
        encoders_dir: An extra folder of encoder specs (highest priority).
        device: Torch device to build on (default CPU; harnesses move the model).

    Returns:
        A torch module with ``sample_rate``, ``scene_embedding_size`` and
        ``timestamp_embedding_size``, in eval mode.

    Raises:
        EvalbenchError: See :func:`resolve_spec`; bad statistics arguments; a
            missing or mismatched checkpoint.
    """
    from evalbench.embed.encoder import load_encoder_model

    spec = resolve_spec(model_file_path, encoder, encoders_dir)
    spec, source = _with_statistics(spec, norm, norm_mean, norm_std)
    loaded = load_encoder_model(spec, torch.device(device or "cpu"))
    return EvalbenchHearModel(loaded, source).eval()


def fit_input_statistics(audio: torch.Tensor, model: EvalbenchHearModel) -> dict[str, Any]:
    """Fit a BYOL-A/MSN model's input statistics on ``audio`` ``(n, N)`` (e.g. training clips) and freeze them.

    The adapter's own ``fit``, as ``evalbench run`` fits on a task's training
    clips (each sound counts whole); it replaces statistics fitted on a first
    call.  Returns the fitted state (empty for encoders that fit nothing).

    Raises:
        EvalbenchError: The statistics were fixed at load time (``norm_mean``/``norm_std``, the spec, or
            ``evalbench pretrain``'s); load with ``norm="first_call"`` to fit your own.
    """
    model.fit_statistics(audio)
    return model.input_statistics()


@torch.no_grad()
def get_scene_embeddings(audio: torch.Tensor, model: EvalbenchHearModel) -> torch.Tensor:
    """``(n_sounds, scene_embedding_size)`` float32: the spec's pooling of the adapter's frames (``run``'s vector)."""
    wav, lengths = model.prepare(audio)
    if wav.shape[0] == 0:
        return torch.zeros(0, model.scene_embedding_size, device=wav.device)
    return model.loaded.pooled(wav, lengths).float()


@torch.no_grad()
def get_timestamp_embeddings(audio: torch.Tensor, model: EvalbenchHearModel) -> tuple[torch.Tensor, torch.Tensor]:
    """The adapter's frames ``(n, T, timestamp_embedding_size)`` float32 and their centres ``(n, T)`` in ms.

    Raises:
        EvalbenchError: The adapter does not state its frame times (see :func:`frame_times`).
    """
    wav, lengths = model.prepare(audio)
    n, n_samples = wav.shape
    if n == 0:
        return torch.zeros(0, 0, model.timestamp_embedding_size, device=wav.device), torch.zeros(0, 0)
    frames = model.encoder.encode(wav, lengths)
    mask = frames.mask.to(torch.bool)
    count = int(mask[0].sum())
    if not (mask[:, :count].all() and not mask[:, count:].any()):
        raise EvalbenchError(
            f"evalbench.hear: encoder '{model.spec.name}' gave sounds of equal length different frame counts "
            f"{mask.sum(1).tolist()}; its adapter is not batch-invariant"
        )
    times = frame_times(model.encoder, model.spec.adapter, n_samples, count)
    duration_ms = n_samples / model.sample_rate * 1000.0
    stamps = torch.as_tensor(np.clip(times * 1000.0, 0.0, duration_ms), dtype=torch.float32, device=wav.device)
    return frames.embeddings[:, :count].float().contiguous(), stamps.expand(n, count).contiguous()
