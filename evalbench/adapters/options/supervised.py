"""Options of the ``supervised`` adapter (torch-free, so ``evalbench encoders validate`` stays light).

The supervised ESC-50 baselines of docs/methods.md §5 (V. Dimitrov's 2022 course
report) are classifiers trained from scratch; evalbench evaluates each one's
penultimate layer as a frozen representation.  Five architectures share one
adapter: the CNN baseline (a), the VGG-style CNN (b), the LSTM (c), the CRNN
with attention pooling (d) and the deep CNN of Kumar, Khadkevich & Fügen,
"Knowledge Transfer from Weakly Labeled Audio Using Convolutional Neural
Network for Sound Events and Scenes", ICASSP 2018 (f).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

SAMPLE_RATE = 44100  # every baseline reads 44.1 kHz audio (docs/methods.md §5.1, §5.2 f)
EMBED_DIMS = {"cnn": 326, "vgg": 128, "lstm": 64, "crnn": 64, "kumar": 1024}  # penultimate widths (§5.2)
DEFAULT_CLASSES = {"cnn": 50, "vgg": 50, "lstm": 50, "crnn": 50, "kumar": 527}  # ESC-50 / AudioSet heads


@dataclass(frozen=True)
class SupervisedOptions:
    """Options of the supervised-baseline adapter.

    Attributes:
        arch: ``cnn`` (326-d), ``vgg`` (128-d), ``lstm`` (64-d), ``crnn``
            (64-d) or ``kumar`` (1024-d "layer 18").  Must match the checkpoint.
        n_classes: Width of the classifier head kept in the network so that a
            whole trained classifier's state dict loads; null means 50 (ESC-50)
            for the report's networks and 527 (AudioSet) for ``kumar``.  The
            head is never used for the representation.
        seed: Seed of the random initialisation, used only without a checkpoint
            (the "random twin" floor a trained checkpoint must beat).
    """

    arch: Literal["cnn", "vgg", "lstm", "crnn", "kumar"]
    n_classes: int | None = None
    seed: int = 0

    def __post_init__(self) -> None:
        if self.n_classes is not None and self.n_classes < 1:
            raise ValueError(f"n_classes: must be a positive integer or null, got {self.n_classes}")
        if self.seed < 0:
            raise ValueError(f"seed: must be non-negative, got {self.seed}")

    @property
    def classes(self) -> int:
        """Classifier-head width (the explicit ``n_classes`` or the architecture's default)."""
        return self.n_classes if self.n_classes is not None else DEFAULT_CLASSES[self.arch]
