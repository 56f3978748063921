"""Self-supervised losses as pure functions of tensors (tested alone, no modules, no state).

- :func:`byol_loss`: BYOL's normalised mean-squared error between an online
  prediction and a target projection, ``2 − 2·cos(p, z)`` (Grill et al.,
  "Bootstrap Your Own Latent", NeurIPS 2020, eq. 2), symmetrised over the two
  views as BYOL-A does (Niizumi et al., IJCNN 2021, §III-B).
- :func:`nt_xent`: SimCLR's normalised temperature-scaled cross-entropy
  (Chen et al., ICML 2020, eq. 1), shared by CLAR (Al-Tahan & Mohsenzadeh,
  AISTATS 2021) and CLMR (Spijkervet & Burgoyne, ISMIR 2021), both τ = 0.5.
- :func:`msn_loss` with :func:`sharpen` and :func:`sinkhorn`: the Masked
  Siamese Networks objective (Assran et al., ECCV 2022, eq. 1–4 and App. C),
  cross-entropy of anchor predictions on sharpened target predictions over
  learnable prototypes, plus the mean-entropy maximisation ("me-max") term.
  Sinkhorn and me-max are batch-wide: under ``torchrun`` the method gives the
  loss the global batch (:func:`evalbench.pretrain.distributed.all_gather_with_grad`),
  which is what MSN's all-reduced sums compute.
"""

from __future__ import annotations

import math

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


def sharpen(p: torch.Tensor, temperature: float) -> torch.Tensor:
    """``p_k^(1/T) / Σ_j p_j^(1/T)`` per row: a lower-entropy version of a distribution (MSN, eq. 3).

    Args:
        p: ``(B, K)`` probabilities (rows sum to one).
        temperature: T in (0, 1]; MSN: 0.25 (constant).  T = 1 returns ``p``.

    Returns:
        ``(B, K)`` sharpened probabilities.
    """
    sharp = p ** (1.0 / temperature)
    return sharp / sharp.sum(dim=1, keepdim=True)


@torch.no_grad()
def sinkhorn(p: torch.Tensor, iterations: int = 3) -> torch.Tensor:
    """Sinkhorn-Knopp balancing of a batch of target distributions over K prototypes (MSN; SwAV's form).

    With Q = pᵀ (K × B) scaled to sum 1, each iteration rescales every prototype
    row to sum 1/K and then every sample column to sum 1/B; the result is
    returned as ``B·Qᵀ``, so each sample's distribution sums to one and each
    prototype is used about equally over the batch (each column of the result
    sums to ≈ B/K, exactly before the last column step).

    Args:
        p: ``(B, K)`` probabilities.
        iterations: Number of row-then-column rescalings (MSN: 3).

    Returns:
        ``(B, K)``, rows summing to one; no gradient.
    """
    q = p.float().T
    k, b = q.shape
    q = q / q.sum()
    for _ in range(iterations):
        q = q / q.sum(dim=1, keepdim=True) / k
        q = q / q.sum(dim=0, keepdim=True) / b
    return (q * b).T


def msn_loss(
    anchors: torch.Tensor,
    targets: torch.Tensor,
    prototypes: torch.Tensor,
    temperature: float = 0.1,
    sharpen_temperature: float = 0.25,
    me_max_weight: float = 1.0,
    sinkhorn_iterations: int = 3,
) -> torch.Tensor:
    """The MSN loss: cross-entropy to sharpened targets over prototypes, minus λ × the mean prediction's entropy.

    With ẑ, ẑ⁺ and q̂ L2-normalised, anchor predictions
    ``p = softmax(ẑ·q̂ᵀ/τ)`` and targets ``p⁺ = sinkhorn(sharpen(softmax(ẑ⁺·q̂ᵀ/τ), T))``
    (no gradient), repeated for each anchor view in view-major order,

    ``L = mean_i H(p⁺_i, p_i) + λ·(Σ_k p̄_k log p̄_k + log K)``,

    p̄ the mean of all anchor predictions (Assran et al., ECCV 2022, eq. 4).
    The me-max term is written as MSN's code writes it, ``log K − H(p̄)``, which
    is ≥ 0 (zero when p̄ is uniform) and has the gradient of ``−H(p̄)``.
    Defaults are the paper's: τ = 0.1, T = 0.25, λ = 1, 3 Sinkhorn iterations.

    Args:
        anchors: ``(V·B, D)`` anchor projections, view-major
            ``[view 0 of the batch; view 1; ...]``.
        targets: ``(B, D)`` target projections (detached here).
        prototypes: ``(K, D)`` learnable prototypes.  Pass the ``nn.Parameter``
            itself: a detached copy (e.g. ``.data``) never learns (docs/methods.md §2.6, pitfall 1).
        temperature: τ of both softmaxes.
        sharpen_temperature: T of :func:`sharpen`.
        me_max_weight: λ.
        sinkhorn_iterations: 0 turns Sinkhorn off.

    Returns:
        Scalar loss.
    """
    if anchors.shape[0] % targets.shape[0]:
        raise ValueError(f"msn_loss: {anchors.shape[0]} anchors are not a whole number of views of {targets.shape[0]}")
    q = F.normalize(prototypes.float(), dim=1)
    logits = F.normalize(anchors.float(), dim=1) @ q.T / temperature
    with torch.no_grad():
        target = sharpen(F.softmax(F.normalize(targets.float(), dim=1) @ q.T / temperature, dim=1), sharpen_temperature)
        if sinkhorn_iterations:
            target = sinkhorn(target, sinkhorn_iterations)
        target = target.repeat(anchors.shape[0] // targets.shape[0], 1)
    cross_entropy = -(target * F.log_softmax(logits, dim=1)).sum(dim=1).mean()
    mean_p = F.softmax(logits, dim=1).mean(dim=0)
    me_max = (mean_p * torch.log(mean_p)).sum() + math.log(mean_p.shape[0])
    return cross_entropy + me_max_weight * me_max
