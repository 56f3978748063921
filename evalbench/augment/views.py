"""Multi-crop views and patch drop for Masked Siamese Networks on log-mel "images".

MSN (Assran et al., "Masked Siamese Networks for Label-Efficient Learning",
ECCV 2022, §3 and App. C) makes, per sample, one *target* view and one
*random anchor* view at 224 px with crop scale (0.3, 1.0), plus *focal*
anchor views at 96 px with scale (0.05, 0.3), and drops a random subset of
the 224 anchor's patch tokens (docs/methods.md §2.2).  The MSN-audio port
(docs/methods.md §2.4) cuts the views from a BYOL-A log-mel (64 mels × 96 frames)
with torchvision's ``RandomResizedCrop`` to a *square*, bilinear, without
antialiasing, so the spectrogram is stretched into the square.

This module provides those pieces for whole batches on the batch's device,
with every random number drawn from an explicit CPU ``torch.Generator`` (so a
resumed run continues bit-identically, as in :mod:`evalbench.augment.spectrogram`):

- :func:`rrc_params` draws torchvision's RandomResizedCrop boxes, per sample:
  up to 10 attempts of area ``U(scale)·H·W`` and aspect ``exp(U(log ratio))``
  (``ratio`` (3/4, 4/3) by default), rounded to integers; the first box that
  fits is placed at a uniform integer corner; if none fits, the central crop
  with the aspect clamped to ``ratio``.  The distribution is torchvision's;
  the random stream is not (it is batched).
- :func:`resized_crop` cuts each sample's box and resizes it to ``size × size``
  exactly as ``F.interpolate(mode="bilinear", align_corners=False,
  antialias=False)`` would, batched as two products with per-sample weight
  matrices (bilinear resizing is separable).
- :class:`RandomResizedCrop` puts the two together.
- :func:`patch_keep` draws the patch-drop mask over a ViT's ``1 + L`` tokens.
- :class:`MultiViewMixup` draws BYOL-A's log-mixup-exp once per view from one
  memory bank and stores each clip in the bank once per step.

A geometric fact this implies (checked in ``tests/unit/augment/test_views.py``):
with the default aspect range, a crop of a 64 × 96 log-mel is at most
``round(64.5 · 4/3) = 86`` frames wide (a 64-row crop with aspect ≤ 4/3;
the fallback crop is 85 wide), so training never shows the network more
than 0.86 s of audio in one image.
"""

from __future__ import annotations

import math

import torch

from evalbench.augment.spectrogram import MixupBank, mixup

DEFAULT_RATIO = (3 / 4, 4 / 3)  # torchvision's RandomResizedCrop default, kept by MSN and MSN-audio
ATTEMPTS = 10  # torchvision's number of tries before the central-crop fallback


def rrc_params(
    batch: int,
    height: int,
    width: int,
    scale: tuple[float, float],
    ratio: tuple[float, float] = DEFAULT_RATIO,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Draw ``batch`` RandomResizedCrop boxes on a ``height × width`` image, torchvision's rule.

    Draws, in order, ``torch.rand((batch, 10, 2), dtype=float64)`` (area and
    log-aspect of each attempt) and ``torch.rand((batch, 2), dtype=float64)``
    (the corner of the accepted box).  Widths and heights are
    ``round(sqrt(area·aspect))`` and ``round(sqrt(area/aspect))`` (round half
    to even, like Python's ``round``).

    Args:
        batch: Number of boxes.
        height: Image height (mel bins).
        width: Image width (frames).
        scale: Range of the crop area as a fraction of the image's.
        ratio: Range of the aspect ratio width/height (sampled log-uniformly).
        generator: CPU generator.

    Returns:
        ``(top, left, h, w)``, each a ``(batch,)`` int64 CPU tensor.
    """
    area = float(height * width)
    u = torch.rand((batch, ATTEMPTS, 2), generator=generator, dtype=torch.float64)
    corner = torch.rand((batch, 2), generator=generator, dtype=torch.float64)
    target = area * (scale[0] + (scale[1] - scale[0]) * u[..., 0])
    lo, hi = math.log(ratio[0]), math.log(ratio[1])
    aspect = torch.exp(lo + (hi - lo) * u[..., 1])
    w = torch.round(torch.sqrt(target * aspect)).long()
    h = torch.round(torch.sqrt(target / aspect)).long()
    fits = (w > 0) & (w <= width) & (h > 0) & (h <= height)
    first = fits.long().argmax(dim=1)  # the first attempt that fits (0 when none does)
    rows = torch.arange(batch)
    h, w, found = h[rows, first], w[rows, first], fits.any(dim=1)
    # Fallback: the whole image, its aspect clamped into ``ratio``, centred.
    in_ratio = width / height
    if in_ratio < min(ratio):
        fw, fh = width, round(width / min(ratio))
    elif in_ratio > max(ratio):
        fw, fh = round(height * max(ratio)), height
    else:
        fw, fh = width, height
    h = torch.where(found, h, torch.full_like(h, fh))
    w = torch.where(found, w, torch.full_like(w, fw))
    top = torch.minimum((corner[:, 0] * (height - h + 1)).long(), height - h)
    left = torch.minimum((corner[:, 1] * (width - w + 1)).long(), width - w)
    top = torch.where(found, top, (height - h) // 2)
    left = torch.where(found, left, (width - w) // 2)
    return top, left, h, w


def _bilinear_weights(start: torch.Tensor, length: torch.Tensor, size: int, in_len: int) -> torch.Tensor:
    """``(B, size, in_len)`` matrices resizing ``[start, start + length)`` of an axis to ``size`` points.

    PyTorch's ``upsample_bilinear2d`` arithmetic with ``align_corners=False``
    and no antialiasing: scale ``length/size`` (float32), source coordinate
    ``scale·(i + 0.5) − 0.5`` clamped at 0, taps ``floor`` and the next one
    (the edge repeats), weights ``1 − λ`` and ``λ``.
    """
    idx = torch.arange(size, device=length.device, dtype=torch.float32)
    scale = length.float() / size
    src = (scale[:, None] * (idx[None] + 0.5) - 0.5).clamp(min=0.0)
    i0 = src.long()
    i1 = i0 + (i0 < (length - 1)[:, None]).long()
    lam = src - i0.float()
    matrix = torch.zeros(length.shape[0], size, in_len, device=length.device)
    matrix.scatter_add_(2, (start[:, None] + i0)[..., None], (1.0 - lam)[..., None])
    return matrix.scatter_add_(2, (start[:, None] + i1)[..., None], lam[..., None])


def resized_crop(
    x: torch.Tensor, top: torch.Tensor, left: torch.Tensor, h: torch.Tensor, w: torch.Tensor, size: int
) -> torch.Tensor:
    """Cut each sample's box and resize it to ``size × size`` (bilinear, ``align_corners=False``, no antialias).

    Equal up to float rounding to
    ``F.interpolate(x[b:b+1, :, top:top+h, left:left+w], (size, size), mode="bilinear", antialias=False)``
    per sample, as torchvision's ``resized_crop`` does to a tensor with ``antialias=False``.

    Args:
        x: ``(B, C, H, W)`` batch.
        top: ``(B,)`` first row of each box.
        left: ``(B,)`` first column of each box.
        h: ``(B,)`` box heights.
        w: ``(B,)`` box widths.
        size: Output side.

    Returns:
        ``(B, C, size, size)``, dtype of ``x``.
    """
    top, left, h, w = (v.to(device=x.device, dtype=torch.long) for v in (top, left, h, w))
    rows = _bilinear_weights(top, h, size, x.shape[-2])  # (B, size, H)
    cols = _bilinear_weights(left, w, size, x.shape[-1])  # (B, size, W)
    out = rows[:, None] @ x.float() @ cols.transpose(1, 2)[:, None]
    return out.to(x.dtype)


class RandomResizedCrop(torch.nn.Module):
    """torchvision's RandomResizedCrop to a square, batched and generator-driven (MSN's multi-crop).

    Args:
        size: Output side: 224 for MSN's target and random anchor views, 96 for its focal views.
        scale: Crop-area range: (0.3, 1.0) at 224 and (0.05, 0.3) at 96 (Assran et al. 2022, App. C).
        ratio: Aspect range, torchvision's default (3/4, 4/3).
    """

    def __init__(self, size: int, scale: tuple[float, float], ratio: tuple[float, float] = DEFAULT_RATIO) -> None:
        super().__init__()
        if size < 1 or not 0 < scale[0] <= scale[1] <= 1 or not 0 < ratio[0] <= ratio[1]:
            raise ValueError(f"RandomResizedCrop: bad size {size}, scale {scale} or ratio {ratio}")
        self.size, self.scale, self.ratio = int(size), tuple(map(float, scale)), tuple(map(float, ratio))

    def extra_repr(self) -> str:
        """Constructor arguments, shown by ``repr``."""
        return f"size={self.size}, scale={self.scale}, ratio={self.ratio}"

    def forward(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """Crop and resize every sample of ``x`` ``(B, C, H, W)`` to ``(B, C, size, size)``."""
        top, left, h, w = rrc_params(x.shape[0], x.shape[-2], x.shape[-1], self.scale, self.ratio, generator)
        return resized_crop(x, top, left, h, w, self.size)


def kept_patches(num_patches: int, ratio: float) -> int:
    """Patches kept of ``num_patches`` when a fraction ``ratio`` is dropped: ``floor(num_patches·(1 − ratio))``.

    E.g. 49 patches (ViT-B/32 at 224): ratio 0.3 keeps 34, ratio 0.15 keeps 41;
    9 patches (at 96): 0.15 keeps 7.  Every image keeps the same count, so the
    dropped tokens can be removed from the batch (:func:`evalbench.adapters.vit.vit_forward`).
    """
    return math.floor(num_patches * (1.0 - ratio) + 1e-9)


def patch_keep(batch: int, num_tokens: int, ratio: float, generator: torch.Generator) -> torch.Tensor:
    """Random patch drop over ``num_tokens = 1 + num_patches`` tokens; the [CLS] token (0) is always kept.

    docs/methods.md §2.6, pitfall 3: the length counts the [CLS] token, and every
    one of the ``num_tokens − 1`` patch tokens (the last one included) is
    equally likely to be kept.  Each image keeps :func:`kept_patches` patches,
    chosen uniformly without replacement by ranking ``torch.rand((batch,
    num_tokens − 1))``.

    Args:
        batch: Images.
        num_tokens: Tokens per image including [CLS] (50 for a 7 × 7 grid, 10 for 3 × 3).
        ratio: Fraction of patches dropped (MSN: 0.15 for ViT-S/16, 0.3 for ViT-B/16).
        generator: CPU generator.

    Returns:
        ``(batch, num_tokens)`` bool, True = kept; column 0 is all True.
    """
    if num_tokens < 2 or not 0 <= ratio < 1:
        raise ValueError(f"patch_keep: need num_tokens >= 2 and 0 <= ratio < 1, got {num_tokens}, {ratio}")
    num_patches = num_tokens - 1
    order = torch.rand((batch, num_patches), generator=generator).argsort(dim=1)
    keep = torch.zeros(batch, num_patches, dtype=torch.bool)
    keep.scatter_(1, order[:, : kept_patches(num_patches, ratio)], True)
    return torch.cat([torch.ones(batch, 1, dtype=torch.bool), keep], dim=1)


class MultiViewMixup(MixupBank):
    """BYOL-A's log-mixup-exp (:class:`~evalbench.augment.spectrogram.MixupBank`) drawn once per view.

    Each of the ``n_views`` views of a sample gets its own λ ~ U(0, α) and its
    own partner from the bank as it was before the call; the un-mixed batch is
    then pushed into the bank *once* per step, so the bank's 2,048 slots hold
    2,048 clips, not copies of the same clip (NOTE: calling ``MixupBank`` once per
    view, as BYOL-A does for its two views, would push each clip ``n_views``
    times and let later views of a step mix a clip with itself).
    """

    def views(self, x: torch.Tensor, n_views: int, generator: torch.Generator) -> torch.Tensor:
        """``n_views`` mixed copies of ``x``, view-major ``[view 0 batch; view 1 batch; ...]``.

        Draws ``torch.rand(n_views·B)`` (λ) then ``torch.randint(filled, (n_views·B,))``
        (partners); on the first call (empty bank) the copies are un-mixed and nothing is drawn.

        Args:
            x: ``(B, C, F, T)`` pre-normalised log-mels.
            n_views: Views per sample.
            generator: CPU generator.

        Returns:
            ``(n_views·B, C, F, T)``.
        """
        if self.bank.numel() == 0:
            self.bank = torch.zeros(self.size, *x.shape[1:], dtype=x.dtype, device=x.device)
        elif self.bank.shape[1:] != x.shape[1:]:
            raise ValueError(f"MixupBank: bank holds {tuple(self.bank.shape[1:])}, got input {tuple(x.shape[1:])}")
        copies = x.repeat(n_views, *([1] * (x.dim() - 1)))
        filled = int(self.filled)
        if filled:
            lam = torch.rand(copies.shape[0], generator=generator) * self.alpha
            slots = torch.randint(filled, (copies.shape[0],), generator=generator).to(x.device)
            copies = mixup(copies, self.bank[slots], lam, self.log_mixup_exp)
        self._push(x.detach())
        return copies


__all__ = [
    "DEFAULT_RATIO",
    "MultiViewMixup",
    "RandomResizedCrop",
    "kept_patches",
    "patch_keep",
    "resized_crop",
    "rrc_params",
]
