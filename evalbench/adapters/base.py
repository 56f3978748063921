"""The encoder adapter protocol.

An adapter wraps one family of models behind a small interface (the X-ARES /
HEAR style, docs/protocol.md §5): it declares ``sample_rate`` (the rate it expects;
the pipeline resamples), ``embed_dim`` (frame embedding width) and
``hop_seconds`` (frame hop), and maps a batch of waveforms plus their valid
lengths to frame embeddings ``(B, T, D)`` with a boolean validity mask
``(B, T)``.  Pooling to one vector per clip is a separate, named step
(:mod:`evalbench.adapters.pooling`) that ignores invalid frames, which fixes the
reference harness's padding pollution (docs/protocol.md §4, flaw 6).

Adapters whose input normalisation is fitted on the downstream training audio
(BYOL-A, docs/protocol.md §2.1 item 3) set ``needs_fit`` and implement :meth:`fit`;
the fitted state enters the embedding-cache key via :meth:`fitted_state`.

Front-end split (optional, ``has_front_end``).  An adapter may cut
:meth:`Encoder.encode` in two: :meth:`~Encoder.features`, a front end with no
learned parameters and no fitted state (e.g. the log-mel spectrogram), and
:meth:`~Encoder.encode_features`, everything after it, with
``encode(w, l) == encode_features(features(w, l), l)``.  An adapter that also
needs a fit then fits from features in batches (:meth:`~Encoder.begin_fit`,
:meth:`~Encoder.fit_features` per batch, :meth:`~Encoder.finish_fit`), to the
same statistics as :meth:`~Encoder.fit` on the clips alone.  The extraction
pipeline uses this to compute each clip's front end once per run, both for the
statistics and for the embedding (:mod:`evalbench.embed.fit`); adapters
without the split keep the plain path.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import torch
from torch import nn

from evalbench.adapters.checkpoints import load_into, save_checkpoint
from evalbench.specs.fields import to_dict


@dataclass
class Frames:
    """Frame embeddings of a batch.

    Attributes:
        embeddings: ``(B, T, D)`` float32 frame embeddings.
        mask: ``(B, T)`` bool, True where the frame comes from real (unpadded) audio.
    """

    embeddings: torch.Tensor
    mask: torch.Tensor


class Encoder(nn.Module):
    """Base class of encoder adapters.

    Subclasses set the class attributes, implement :meth:`from_options` and
    :meth:`encode`, and bump ``VERSION`` whenever a code change can alter their
    outputs (it is part of the embedding-cache key).
    """

    VERSION: ClassVar[int] = 1
    needs_fit: bool = False  # adapters may set it per instance (e.g. fixed statistics need no fit)
    has_front_end: ClassVar[bool] = False  # True: features/encode_features (and, with needs_fit, *_fit) exist
    sample_rate: int
    embed_dim: int
    hop_seconds: float

    @classmethod
    def from_options(cls, options: Any, checkpoint: Path | None) -> Encoder:
        """Build the adapter from its typed options and an optional checkpoint path."""
        raise NotImplementedError

    def encode(self, waveforms: torch.Tensor, lengths: torch.Tensor) -> Frames:
        """Encode a batch (with ``has_front_end``: ``encode_features(features(waveforms, lengths), lengths)``).

        Args:
            waveforms: ``(B, N)`` float32 mono audio at :attr:`sample_rate`,
                zero-padded on the right beyond each clip's length.
            lengths: ``(B,)`` int64 number of valid samples per clip.

        Returns:
            Frame embeddings and validity mask.
        """
        if self.has_front_end:
            return self.encode_features(self.features(waveforms, lengths), lengths)
        raise NotImplementedError

    def features(self, waveforms: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """The front end of :meth:`encode` (only if ``has_front_end``).

        It has no learned parameters and does not depend on fitted state, so
        it can run before :meth:`fit`; each clip's features depend only on its
        own valid samples (batch invariance, as :meth:`encode`).

        Args:
            waveforms: ``(B, N)`` float32 audio, as for :meth:`encode`.
            lengths: ``(B,)`` int64 valid samples per clip.

        Returns:
            A ``(B, ...)`` float tensor that :meth:`encode_features` and
            :meth:`fit_features` accept.
        """
        raise NotImplementedError(f"{type(self).__name__} has no separate front end")

    def encode_features(self, features: torch.Tensor, lengths: torch.Tensor) -> Frames:
        """Everything of :meth:`encode` after the front end (only if ``has_front_end``).

        ``encode(w, l)`` equals this applied to ``features(w, l)`` and ``l``.

        Args:
            features: Output of :meth:`features` for the batch.
            lengths: ``(B,)`` int64 valid samples per clip (the same as given to :meth:`features`).

        Returns:
            Frame embeddings and validity mask.
        """
        raise NotImplementedError(f"{type(self).__name__} has no separate front end")

    def fit(self, clips: Iterable[torch.Tensor]) -> None:
        """Fit input statistics on training audio (only if ``needs_fit``)."""

    def begin_fit(self) -> None:
        """Start a batched fit from features, discarding any partial one (``has_front_end`` and ``needs_fit``)."""
        raise NotImplementedError(f"{type(self).__name__} cannot fit from features")

    def fit_features(self, features: torch.Tensor, lengths: torch.Tensor) -> None:
        """Accumulate the fit statistics of a batch of training clips' :meth:`features`.

        Only each clip's valid part counts, so after :meth:`finish_fit` the state
        equals that of :meth:`fit` on the same clips, each trimmed to its valid
        length, up to float summation order.

        Args:
            features: :meth:`features` of the batch.
            lengths: ``(B,)`` int64 valid samples per clip.
        """
        raise NotImplementedError(f"{type(self).__name__} cannot fit from features")

    def finish_fit(self) -> None:
        """Turn the statistics accumulated since :meth:`begin_fit` into the fitted state.

        Raises:
            ValueError: Nothing was accumulated.
        """
        raise NotImplementedError(f"{type(self).__name__} cannot fit from features")

    def fitted_state(self) -> dict[str, Any]:
        """JSON-able fitted state (e.g. normalisation statistics) for the cache key."""
        return {}

    def load_fitted_state(self, state: dict[str, Any]) -> None:
        """Restore a state produced by :meth:`fitted_state` (cached fits skip re-reading audio)."""
        if state:
            raise NotImplementedError(f"{type(self).__name__} has no fitted state to load")


def valid_frames(lengths: torch.Tensor, n_frames: int, hop: int, win: int) -> torch.Tensor:
    """Mask of the centred STFT frames that belong to each clip when it is framed on its own.

    A clip of ``L`` samples framed alone with centred windows (edge-reflected,
    after zero-extending clips shorter than one window to ``win``) has
    ``1 + max(L, win) // hop`` frames, the last ones reaching into the
    reflection of its own end: those are part of the clip's true audio, never
    padding.  Frames past that count exist only because evalbench padded the
    clip (to the task unit or to the longest clip of the batch) and are
    invalid.  Front ends that use this mask must compute each clip's own frames
    exactly as if it were alone (:class:`~evalbench.adapters.frontend.LogMelFrontEnd`
    reflects at each clip's own end), so encoding is batch-invariant.

    Args:
        lengths: ``(B,)`` valid samples per clip.
        n_frames: Number of frames T computed for the padded batch.
        hop: Hop in samples.
        win: Window (FFT) length in samples.

    Returns:
        ``(B, T)`` bool mask.
    """
    count = torch.div(lengths.clamp(min=win), hop, rounding_mode="floor") + 1
    count = count.clamp(min=1, max=n_frames)
    return torch.arange(n_frames, device=lengths.device)[None, :] < count[:, None]


@contextmanager
def seeded(seed: int) -> Iterator[None]:
    """Run the body (typically a network's construction) under ``torch.manual_seed(seed)``.

    The global RNG state is restored afterwards, so building a random twin never
    perturbs other seeded code.
    """
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield


def encode_per_length(
    waveforms: torch.Tensor,
    lengths: torch.Tensor,
    run: Callable[[torch.Tensor], torch.Tensor | Frames],
    min_samples: int = 1,
) -> Frames:
    """Encode each clip on its own valid samples, one sub-batch per distinct length.

    The batch-invariance strategy for networks whose receptive field is too
    large to mask edge frames (ResNets, recurrent nets, HEAR modules): every
    clip is trimmed to its valid length and clips of equal length share a
    sub-batch, so no output depends on another clip's padding.  In the pipeline
    almost every clip of a task has the task's unit length, so this costs
    nothing there.

    Args:
        waveforms: ``(B, N)`` audio, zero-padded beyond each clip's length.
        lengths: ``(B,)`` valid samples per clip.
        run: Maps a ``(b, L)`` batch of equal-length clips to frames ``(b, T_L, D)``
            (all valid), or to :class:`Frames` whose mask drops some of them
            (e.g. frames a HEAR module centres past the end of the audio).
        min_samples: Clips shorter than this are zero-padded on the right to it
            (the shortest input the network accepts).

    Returns:
        Frames ``(B, max T_L, D)``; the mask marks each clip's own ``T_L`` frames.
    """
    n_total = waveforms.shape[1]
    groups: dict[int, list[int]] = {}
    for i, n in enumerate(lengths.tolist()):
        groups.setdefault(min(max(int(n), 0), n_total), []).append(i)
    outputs = {}
    for n, rows in groups.items():
        x = waveforms[torch.tensor(rows, device=waveforms.device), :n]
        if n < min_samples:
            x = nn.functional.pad(x, (0, min_samples - n))
        out = run(x)
        outputs[n] = out if isinstance(out, Frames) else Frames(out, torch.ones(out.shape[:2], dtype=torch.bool))
    first = next(iter(outputs.values())).embeddings
    n_frames = max(o.embeddings.shape[1] for o in outputs.values())
    emb = first.new_zeros(waveforms.shape[0], n_frames, first.shape[2])
    mask = torch.zeros(waveforms.shape[0], n_frames, dtype=torch.bool, device=waveforms.device)
    for n, rows in groups.items():
        t = outputs[n].embeddings.shape[1]
        emb[rows, :t] = outputs[n].embeddings
        mask[rows, :t] = outputs[n].mask.to(mask.device)
    return Frames(emb, mask)


class FrozenEncoder(Encoder):
    """Base of adapters around one learned network held in attribute :attr:`WEIGHTS`.

    Provides the shared mechanics: construction from options with a seeded
    random initialisation (the "random twin") or a checkpoint loaded with an
    exact key check, export of the weights in the format that is read back,
    and a network that stays in eval mode (a frozen encoder never updates
    BatchNorm statistics or applies dropout).  Subclasses set ``FAMILY`` and
    build the network inside :func:`seeded` in ``__init__(options)``.
    """

    FAMILY: ClassVar[str] = ""
    WEIGHTS: ClassVar[str] = "net"
    options: Any

    @property
    def weights_module(self) -> nn.Module:
        """The module whose state dict is the checkpoint."""
        return getattr(self, self.WEIGHTS)

    @classmethod
    def from_options(cls, options: Any, checkpoint: Path | None) -> FrozenEncoder:
        """Build from options: seeded random weights, or ``checkpoint``'s (every key difference is listed)."""
        enc = cls(options)
        if checkpoint is not None:
            enc.load_weights(Path(checkpoint))
        return enc.eval()

    def load_weights(self, path: Path) -> None:
        """Load an evalbench checkpoint of :attr:`FAMILY` or a bare state dict into the network."""
        load_into(self.weights_module, path, self.FAMILY, options=to_dict(self.options))

    def export_checkpoint(self, path: Path) -> None:
        """Write the network weights as an evalbench checkpoint that :meth:`from_options` reads."""
        save_checkpoint(Path(path), self.weights_module, self.FAMILY, to_dict(self.options))

    def train(self, mode: bool = True) -> FrozenEncoder:
        """Stay in eval mode whatever is asked: a frozen encoder never updates BatchNorm or applies dropout."""
        return super().train(False)
