"""Options of the ``clar`` adapter (torch-free, so ``evalbench encoders validate`` stays light).

CLAR (Al-Tahan & Mohsenzadeh, "CLAR: Contrastive Learning of Auditory
Representations", AISTATS 2021) trains a ResNet-18 either on a 3-channel
spectrogram image (2-D) or on the raw waveform (1-D), at 16 kHz
(docs/methods.md §3).  The paper and the official code disagree on the spectrogram
front end (docs/methods.md §3.1), so the choice is an option and is recorded in
the encoder identity (cache key and run record).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

SAMPLE_RATE = 16000  # CLAR resamples everything to 16 kHz (docs/methods.md §3.1)
EMBED_DIM = 512  # ResNet-18 output width, 2-D and 1-D (docs/methods.md §3.2)


@dataclass(frozen=True)
class ClarOptions:
    """Options of the CLAR adapter.

    Attributes:
        frontend: Spectrogram front end of the 2-D encoder.  ``code`` (default)
            follows the official code: a 2048-point (128 ms) Hann window with a
            128-sample (8 ms) hop evaluated at 128 log-spaced frequencies from
            40 Hz towards 8 kHz (magnitude in dB, and its phase) plus a 128-band
            mel spectrogram (40–8000 Hz, power in dB).  ``paper`` follows the
            AISTATS text: 16 ms window (n_fft 256), 8 ms hop, 128 mel bands,
            ``10·log10`` power for both magnitude and mel.  Ignored by ``resnet1d``.
        encoder: ``resnet2d`` (torchvision ResNet-18 on the 3-channel
            spectrogram) or ``resnet1d`` (1-D ResNet-18 on the raw waveform,
            kernel-9 BasicBlocks).  Must match the checkpoint's architecture.
        seed: Seed of the random initialisation, used only without a checkpoint
            (the "random twin" floor a trained checkpoint must beat).
    """

    frontend: Literal["code", "paper"] = "code"
    encoder: Literal["resnet2d", "resnet1d"] = "resnet2d"
    seed: int = 0

    def __post_init__(self) -> None:
        if self.seed < 0:
            raise ValueError(f"seed: must be non-negative, got {self.seed}")
