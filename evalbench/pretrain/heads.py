"""Projection and prediction heads shared by the pretraining methods.

BYOL (Grill et al., NeurIPS 2020, §3.3) and BYOL-A (Niizumi et al., IJCNN
2021, §III-B) use the same two-layer MLP for the projector and the predictor:
``Linear(d → 4096) → BatchNorm1d → ReLU → Linear(4096 → 256)``.
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
