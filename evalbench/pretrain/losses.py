"""Self-supervised losses as pure functions of tensors (tested alone, no modules, no state).

- :func:`byol_loss`: BYOL's normalised mean-squared error between an online
  prediction and a target projection, ``2 − 2·cos(p, z)`` (Grill et al.,
  "Bootstrap Your Own Latent", NeurIPS 2020, eq. 2), symmetrised over the two
  views as BYOL-A does (Niizumi et al., IJCNN 2021, §III-B).
- :func:`nt_xent`: SimCLR's normalised temperature-scaled cross-entropy
  (Chen et al., ICML 2020, eq. 1), shared by CLAR (Al-Tahan & Mohsenzadeh,
  AISTATS 2021) and CLMR (Spijkervet & Burgoyne, ISMIR 2021), both τ = 0.5.
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


def nt_xent(z1: torch.Tensor, z2: torch.Tensor, tau: float = 0.5) -> torch.Tensor:
    """NT-Xent over the 2N views of N clips.

    For view i with positive j (the other view of its clip),
    ``ℓ_i = −log[exp(sim(z_i, z_j)/τ) / Σ_{k≠i} exp(sim(z_i, z_k)/τ)]`` with
    cosine similarity; the denominator includes the positive (SimCLR's form,
    which CLAR and CLMR keep); the loss is the mean over all 2N views.

    Args:
        z1: ``(N, D)`` projections of the first views.
        z2: ``(N, D)`` projections of the second views (row i pairs with ``z1[i]``).
        tau: Temperature (0.5 in CLAR and CLMR).

    Returns:
        Scalar loss; with N clips it is at least ``0`` and equals ``log(2N − 1)``
        when every similarity is equal.
    """
    n = z1.shape[0]
    z = F.normalize(torch.cat([z1, z2]).float(), dim=-1)
    sim = z @ z.T / tau
    sim = sim.masked_fill(torch.eye(2 * n, dtype=torch.bool, device=z.device), float("-inf"))
    positives = torch.cat([torch.arange(n, 2 * n), torch.arange(0, n)]).to(z.device)
    return F.cross_entropy(sim, positives)
