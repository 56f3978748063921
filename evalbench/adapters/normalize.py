"""Scalar log-mel normalisation fitted on downstream training audio.

BYOL-A (Niizumi et al., IJCNN 2021 / TASLP 2023) and the MSN-audio port
normalise log-mel input as x̃ = (x − μ)/σ with a *single* mean and standard
deviation computed over the downstream task's training clips (EVAR uses at most
5,000 clips, BYOL-A v1's own evaluation up to 10,000; docs/protocol.md §2.1 item 3,
docs/methods.md §1.2).  This module computes μ and σ over every frame of each
training clip framed on its own (its padding excluded, the frames at its true
end included), and keeps them as plain floats so they can be stored in the
embedding-cache key and the run record.

The statistics are running float64 sums (Σx, Σx², count), so they can be
accumulated clip by clip (:meth:`LogMelNormalizer.fit`) or batch by batch from
log-mels the extraction computes anyway (:meth:`FittedLogMel.fit_features`);
the two differ only in float summation order and in the float32 rounding of a
batched against a single-clip STFT (relative ~1e-7).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import torch
from torch import nn

from evalbench.adapters.frontend import LogMelFrontEnd
from evalbench.adapters.options import LogMelFrontEndOptions


class LogMelNormalizer(nn.Module):
    """Scalar mean/std normalisation of log-mel spectrograms.

    Args:
        mean: Fixed mean (e.g. a published value); None until fitted.
        std: Fixed standard deviation; None until fitted.
    """

    def __init__(self, mean: float | None = None, std: float | None = None) -> None:
        super().__init__()
        self.mean, self.std = mean, std
        self._sums: tuple[float, float, int] | None = None  # (Σx, Σx², count) of a fit in progress

    @property
    def fitted(self) -> bool:
        """True once mean and std are known."""
        return self.mean is not None and self.std is not None

    @torch.no_grad()
    def fit(
        self,
        clips: Iterable[torch.Tensor],
        logmel: Callable[[torch.Tensor], torch.Tensor],
        n_valid: Callable[[int, int], int],
    ) -> None:
        """Compute μ and σ over every valid log-mel value of ``clips``.

        Args:
            clips: 1-D waveforms (each trimmed to its valid length).
            logmel: Front end mapping ``(1, N)`` audio to ``(1, n_mels, T)``.
            n_valid: ``(n_samples, T) -> valid frame count`` for one clip.

        Raises:
            ValueError: No clip (nothing to fit on).
        """
        self.begin()
        for wav in clips:
            spec = logmel(wav.reshape(1, -1).float())[0]
            self.accumulate(spec[:, : n_valid(wav.numel(), spec.shape[-1])])
        self.finish()

    def begin(self) -> None:
        """Start a fit: zero the running sums (a fit in progress is discarded)."""
        self._sums = (0.0, 0.0, 0)

    @torch.no_grad()
    def accumulate(self, values: torch.Tensor) -> None:
        """Add log-mel values (any shape, every element valid) to the running float64 sums.

        Args:
            values: Valid log-mel values of one or more clips.
        """
        total, total_sq, count = self._sums or (0.0, 0.0, 0)
        x = values.double()
        self._sums = (total + float(x.sum()), total_sq + float((x**2).sum()), count + x.numel())

    def finish(self) -> None:
        """Set μ and σ (population, floored at 1e-6) from the running sums and clear them.

        Raises:
            ValueError: Nothing was accumulated.
        """
        total, total_sq, count = self._sums or (0.0, 0.0, 0)
        self._sums = None
        if count == 0:
            raise ValueError("no training audio to fit the log-mel normalisation on")
        mean = total / count
        self.mean, self.std = mean, max(total_sq / count - mean**2, 1e-12) ** 0.5

    def forward(self, spec: torch.Tensor) -> torch.Tensor:
        """Normalise a log-mel tensor of any shape."""
        if not self.fitted:
            raise RuntimeError("LogMelNormalizer used before fit() or fixed statistics")
        return (spec - self.mean) / self.std

    def state(self) -> dict[str, float]:
        """JSON-able statistics."""
        return {"mean": float(self.mean), "std": float(self.std)} if self.fitted else {}

    def load(self, state: dict[str, float]) -> None:
        """Restore statistics from :meth:`state`."""
        self.mean, self.std = float(state["mean"]), float(state["std"])


class FittedLogMel:
    """Mixin: log-mel front end normalised by scalar statistics fitted on training audio.

    For adapters (BYOL-A, MSN) that hold ``frontend`` (a
    :class:`~evalbench.adapters.frontend.LogMelFrontEnd`), ``normalizer`` (a
    :class:`LogMelNormalizer`) and ``needs_fit`` (False when the options fix
    the statistics).  Supplies the encoder protocol's ``fit``,
    ``fitted_state`` and ``load_fitted_state``, and the front-end split
    (:mod:`evalbench.adapters.base`): :meth:`features` is the un-normalised
    log-mel, which needs neither weights nor statistics, and the adapter
    implements ``encode_features`` from it (normalisation onwards); the
    statistics can then be fitted batch by batch from those log-mels
    (:meth:`begin_fit`, :meth:`fit_features`, :meth:`finish_fit`).
    """

    has_front_end = True
    frontend: LogMelFrontEnd
    normalizer: LogMelNormalizer
    needs_fit: bool

    def init_logmel(self, frontend: LogMelFrontEndOptions, norm_mean: float | None, norm_std: float | None) -> None:
        """Create the front end and the normaliser; fixed statistics (both given) mean nothing to fit."""
        self.frontend = LogMelFrontEnd(frontend)
        self.normalizer = LogMelNormalizer(norm_mean, norm_std)
        self.needs_fit = norm_mean is None

    def _logmel(self, waveforms: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        """Log-mel ``(B, F, T)``, each clip framed as if alone (clips under one window zero-extended)."""
        return self.frontend(waveforms, lengths)

    def _n_valid(self, n_samples: int, n_frames: int) -> int:
        """Log-mel frames of one clip of ``n_samples`` samples framed alone (every one of them, at least 1)."""
        return int(self.frontend.frame_mask(torch.tensor([n_samples]), n_frames).sum())

    def fit(self, clips: Iterable[torch.Tensor]) -> None:
        """Fit the scalar log-mel mean/std on every frame of the training clips; no-op with fixed statistics.

        Args:
            clips: 1-D waveforms at the adapter's rate, each trimmed to its valid length.
        """
        if self.needs_fit:
            self.normalizer.fit(clips, self._logmel, self._n_valid)

    def features(self, waveforms: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """The front end: un-normalised log-mel ``(B, n_mels, T)``, each clip framed as if alone.

        Args:
            waveforms: ``(B, N)`` float32 audio, zero-padded on the right.
            lengths: ``(B,)`` valid samples per clip.

        Returns:
            The log-mel; clip ``b``'s own frames are ``frontend.frame_mask(lengths, T)[b]``.
        """
        return self._logmel(waveforms, lengths)

    def begin_fit(self) -> None:
        """Start a batched fit (discarding one in progress); no-op with fixed statistics."""
        if self.needs_fit:
            self.normalizer.begin()

    def fit_features(self, features: torch.Tensor, lengths: torch.Tensor) -> None:
        """Add the valid log-mel values of a batch of training clips to the fit; no-op with fixed statistics.

        A clip's valid frames are those :meth:`~evalbench.adapters.frontend.LogMelFrontEnd.frame_mask`
        marks, exactly the frames of the clip framed alone that :meth:`fit` uses.

        Args:
            features: :meth:`features` ``(B, n_mels, T)`` of the clips.
            lengths: ``(B,)`` valid samples per clip.
        """
        if self.needs_fit:
            mask = self.frontend.frame_mask(lengths.to(features.device), features.shape[-1])
            self.normalizer.accumulate(features.transpose(1, 2)[mask])

    def finish_fit(self) -> None:
        """Set the statistics from the batches given since :meth:`begin_fit`; no-op with fixed statistics.

        Raises:
            ValueError: No training clip was given.
        """
        if self.needs_fit:
            self.normalizer.finish()

    def fitted_state(self) -> dict[str, float]:
        """``{"mean", "std"}`` of the normalisation (empty before fitting)."""
        return self.normalizer.state()

    def load_fitted_state(self, state: dict[str, float]) -> None:
        """Restore statistics from :meth:`fitted_state`."""
        if state:
            self.normalizer.load(state)
