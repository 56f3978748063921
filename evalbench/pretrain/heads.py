"""Projection and prediction heads shared by the pretraining methods.

BYOL (Grill et al., NeurIPS 2020, §3.3) and BYOL-A (Niizumi et al., IJCNN
2021, §III-B) use the same two-layer MLP for the projector and the predictor:
``Linear(d → 4096) → BatchNorm1d → ReLU → Linear(4096 → 256)``.

CLAR (Al-Tahan & Mohsenzadeh, AISTATS 2021) has a three-layer projector when
it trains without labels and, with labels, a two-layer projector whose
un-normalised output feeds a small classifier (:class:`ClarProjectionHead`,
:class:`ClarSemiSupervisedProjection`, :class:`ClarClassifier`).

MSN (Assran et al., ECCV 2022) projects the ViT's [CLS] token with a
three-layer GELU head to the 256-d space of its prototypes (:class:`MSNProjector`).
"""

from __future__ import annotations

from torch import nn

BYOL_HIDDEN, BYOL_OUT = 4096, 256  # Grill et al. 2020 §3.3; BYOL-A uses the same sizes


class MLPHead(nn.Sequential):
    """``Linear → BatchNorm1d → ReLU → Linear``: BYOL's projector and predictor.

    Args:
        in_dim: Input width (the pooled representation for a projector, the
            projection for a predictor).
        hidden: Hidden width (4096 in BYOL and BYOL-A).
        out_dim: Output width (256 in BYOL and BYOL-A).
    """

    def __init__(self, in_dim: int, hidden: int = BYOL_HIDDEN, out_dim: int = BYOL_OUT) -> None:
        super().__init__(
            nn.Linear(in_dim, hidden), nn.BatchNorm1d(hidden), nn.ReLU(inplace=True), nn.Linear(hidden, out_dim)
        )


CLAR_HIDDEN, CLAR_OUT = 512, 128  # Al-Tahan & Mohsenzadeh, AISTATS 2021 (docs/methods.md §3.3) and the official code


class ClarProjectionHead(nn.Sequential):
    """CLAR's self-supervised-only projector (docs/methods.md §3.3, the official ``models.Projection``).

    ``Linear(d → 512) → BN → ReLU → Linear(512 → 512) → BN → ReLU → Linear(512 → 128, no bias)``;
    NT-Xent normalises its output.

    Args:
        in_dim: Encoder width (512 for both CLAR ResNet-18s).
        hidden: Hidden width (512).
        out_dim: Projection width (128).
    """

    def __init__(self, in_dim: int = 512, hidden: int = CLAR_HIDDEN, out_dim: int = CLAR_OUT) -> None:
        super().__init__(
            nn.Linear(in_dim, hidden),
            nn.BatchNorm1d(hidden),
            nn.ReLU(inplace=True),
            nn.Linear(hidden, hidden),
            nn.BatchNorm1d(hidden),
            nn.ReLU(inplace=True),
            nn.Linear(hidden, out_dim, bias=False),
        )


class ClarSemiSupervisedProjection(nn.Sequential):
    """CLAR's projector when it trains with labels: ``Linear(d → 512) → BN → ReLU → Linear(512 → 128)`` = z.

    The contrastive loss uses normalise(z); :class:`ClarClassifier` reads the
    un-normalised z (docs/methods.md §3.3, the official ``semi_supervised.Projection``).

    Args:
        in_dim: Encoder width (512).
        hidden: Hidden width (512).
        out_dim: Projection width (128).
    """

    def __init__(self, in_dim: int = 512, hidden: int = CLAR_HIDDEN, out_dim: int = CLAR_OUT) -> None:
        super().__init__(nn.Linear(in_dim, hidden), nn.BatchNorm1d(hidden), nn.ReLU(), nn.Linear(hidden, out_dim))


class ClarClassifier(nn.Sequential):
    """CLAR's classifier on the un-normalised projection: ``BN(128) → ReLU → Linear(128 → C, no bias)``.

    Args:
        n_classes: Number of classes C.
        in_dim: Projection width (128).
    """

    def __init__(self, n_classes: int, in_dim: int = CLAR_OUT) -> None:
        super().__init__(nn.BatchNorm1d(in_dim), nn.ReLU(), nn.Linear(in_dim, n_classes, bias=False))


MSN_HIDDEN, MSN_OUT = 2048, 256  # Assran et al., ECCV 2022, App. C (and the MSN-audio port)


class MSNProjector(nn.Sequential):
    """MSN's 3-layer projection head: ``Linear → BN → GELU → Linear → BN → GELU → Linear``.

    Maps the [CLS] token (768 for ViT-B) through two 2048-wide hidden layers to
    the 256-d space of the prototypes; MSN has no predictor head (Assran et
    al., ECCV 2022, App. C; docs/methods.md §2.1).

    Args:
        in_dim: Token width of the backbone.
        hidden: Hidden width (2048).
        out_dim: Projection width (256), the prototypes' width.
    """

    def __init__(self, in_dim: int, hidden: int = MSN_HIDDEN, out_dim: int = MSN_OUT) -> None:
        super().__init__(
            nn.Linear(in_dim, hidden),
            nn.BatchNorm1d(hidden),
            nn.GELU(),
            nn.Linear(hidden, hidden),
            nn.BatchNorm1d(hidden),
            nn.GELU(),
            nn.Linear(hidden, out_dim),
        )
