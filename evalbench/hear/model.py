"""The HEAR model object: an evalbench encoder behind the HEAR model attributes."""

from __future__ import annotations

import logging
from typing import Any

import torch
from torch import nn

from evalbench.errors import EvalbenchError

log = logging.getLogger(__package__)  # "evalbench.hear", the logger name the package has always used


class EvalbenchHearModel(nn.Module):
    """An evalbench encoder behind the HEAR model attributes.

    Attributes:
        sample_rate: The adapter's rate (the harness resamples to it).
        scene_embedding_size: Width of the spec's pooled clip vector.
        timestamp_embedding_size: Width of the adapter's frames.
        hop_seconds: The adapter's nominal frame hop.
        spec: The encoder spec scored.
        loaded: The :class:`~evalbench.embed.encoder.LoadedEncoder` (``run``'s object).
        norm_source: Where the input statistics come from (:mod:`evalbench.hear.input_stats`);
            None for encoders that fit none, ``"first_call"`` until fitted.
    """

    def __init__(self, loaded: Any, norm_source: str | None) -> None:
        super().__init__()
        self.encoder = loaded.model  # a registered submodule: .to(device) moves it
        self.loaded = loaded
        self.spec = loaded.spec
        self.sample_rate = int(loaded.model.sample_rate)
        self.scene_embedding_size = int(loaded.dim)
        self.timestamp_embedding_size = int(loaded.model.embed_dim)
        self.hop_seconds = float(loaded.model.hop_seconds)
        self.norm_source = norm_source
        self.pending_fit = norm_source == "first_call"

    def extra_repr(self) -> str:
        """The encoder's name, rate and statistics source in the module's repr."""
        return f"encoder={self.spec.name!r}, sample_rate={self.sample_rate}, norm_source={self.norm_source!r}"

    @property
    def device(self) -> torch.device:
        """Where the encoder's parameters (else buffers) live; CPU for encoders with neither."""
        tensor = next(self.encoder.parameters(), None)
        if tensor is None:
            tensor = next(self.encoder.buffers(), None)
        return tensor.device if tensor is not None else torch.device("cpu")

    def input_statistics(self) -> dict[str, Any]:
        """The adapter's fitted state (``{"mean", "std"}`` for BYOL-A/MSN; empty for encoders that fit none)."""
        return self.encoder.fitted_state()

    def fit_statistics(self, audio: torch.Tensor) -> None:
        """Fit the input statistics on ``audio`` ``(n, N)`` with the adapter's ``fit`` and freeze them.

        Raises:
            EvalbenchError: The statistics were fixed at load time (they are part of the encoder then).
        """
        if self.norm_source is None:
            return  # the encoder fits nothing
        if not self.encoder.needs_fit:
            raise EvalbenchError(
                f"evalbench.hear: encoder '{self.spec.name}' has input statistics fixed by {self.norm_source}; "
                "load it with norm='first_call' to fit them on audio of your choice"
            )
        wav, _ = self.prepare(audio, fit=False)
        if wav.shape[0] == 0:
            raise EvalbenchError("evalbench.hear: fit_input_statistics needs at least one sound")
        self._fit(wav)
        self.pending_fit = False
        self.norm_source = f"fit_input_statistics on {wav.shape[0]} sound(s)"

    def _fit(self, wav: torch.Tensor) -> None:
        if self.encoder.needs_fit:
            self.encoder.fit(iter(wav))

    def prepare(self, audio: Any, fit: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
        """``audio`` as float32 ``(n, N)`` on the model's device and its lengths; fits pending statistics.

        Raises:
            EvalbenchError: ``audio`` is not ``(n_sounds, n_samples)`` with ``n_samples >= 1``.
        """
        wav = torch.as_tensor(audio)
        if wav.ndim != 2 or wav.shape[1] < 1:
            raise EvalbenchError(
                f"evalbench.hear: audio must be (n_sounds, n_samples) with n_samples >= 1, got {tuple(wav.shape)}"
            )
        wav = wav.to(self.device, torch.float32)
        if fit and self.pending_fit and wav.shape[0]:
            self._fit(wav)
            if bool(wav.any()):
                self.pending_fit = False
                log.warning(
                    "evalbench.hear: encoder '%s' fitted its input statistics %s on the first call's %d sound(s) "
                    "and keeps them for every later call; give load_model norm_mean/norm_std for statistics that do "
                    "not depend on what is embedded first",
                    self.spec.name,
                    self.input_statistics(),
                    wav.shape[0],
                )
        lengths = torch.full((wav.shape[0],), wav.shape[1], dtype=torch.int64, device=wav.device)
        return wav, lengths
