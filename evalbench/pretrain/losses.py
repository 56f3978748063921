"""Self-supervised losses as pure functions of tensors (tested alone, no modules, no state).

- :func:`byol_loss`: BYOL's normalised mean-squared error between an online
  prediction and a target projection, ``2 − 2·cos(p, z)`` (Grill et al.,
  "Bootstrap Your Own Latent", NeurIPS 2020, eq. 2), symmetrised over the two
  views as BYOL-A does (Niizumi et al., IJCNN 2021, §III-B).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def byol_loss(p: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    """Per-sample BYOL loss ``2 − 2·⟨p/‖p‖, z/‖z‖⟩`` in [0, 4].

    Args:
        p: ``(B, D)`` online predictions.
        z: ``(B, D)`` target projections (the caller detaches them).

    Returns:
        ``(B,)`` losses.
    """
    return 2.0 - 2.0 * (F.normalize(p, dim=-1) * F.normalize(z, dim=-1)).sum(dim=-1)


def symmetric_byol_loss(p1: torch.Tensor, p2: torch.Tensor, z1: torch.Tensor, z2: torch.Tensor) -> torch.Tensor:
    """BYOL-A's objective: ``mean_batch[ℓ(p1, sg(z2)) + ℓ(p2, sg(z1))]``.

    Args:
        p1: Online predictions of view 1.
        p2: Online predictions of view 2.
        z1: Target projections of view 1.
        z2: Target projections of view 2.

    Returns:
        Scalar loss in [0, 8]; gradients never reach the target projections.
    """
    return (byol_loss(p1, z2.detach()) + byol_loss(p2, z1.detach())).mean()
