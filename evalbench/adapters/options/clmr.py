"""Options of the ``clmr`` adapter (torch-free, so ``evalbench encoders validate`` stays light).

CLMR (Spijkervet & Burgoyne, "Contrastive Learning of Musical
Representations", ISMIR 2021) is SimCLR on raw waveforms with a SampleCNN
encoder (Lee et al., "Sample-level Deep Convolutional Neural Networks for
Music Auto-tagging Using Raw Waveforms", SMC 2017): 22,050 Hz audio in
59,049-sample (3^10) chunks, 512-d output (docs/methods.md §4.1).  The network has
no free hyper-parameters, so the only option is the seed of the random twin.
"""

from __future__ import annotations

from dataclasses import dataclass

SAMPLE_RATE = 22050  # CLMR's audio rate (docs/methods.md §4.1)
CHUNK_SAMPLES = 59049  # 3**10 ≈ 2.68 s: SampleCNN's fixed input length
EMBED_DIM = 512  # SampleCNN output width


@dataclass(frozen=True)
class ClmrOptions:
    """Options of the CLMR adapter.

    Attributes:
        seed: Seed of the random initialisation, used only without a checkpoint
            (the "random twin" floor a trained checkpoint must beat).
    """

    seed: int = 0

    def __post_init__(self) -> None:
        if self.seed < 0:
            raise ValueError(f"seed: must be non-negative, got {self.seed}")
