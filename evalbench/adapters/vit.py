"""Vision Transformer geometry for log-mel "images": windows, padding, positions, masked forward.

A ViT (Dosovitskiy et al., "An Image is Worth 16x16 Words", ICLR 2021) cuts an
image into non-overlapping ``p × p`` patches, embeds each with one strided
convolution, prepends a learned [CLS] token, adds learned absolute positional
embeddings (one per cell of the training grid, 7 × 7 for ViT-B/32 at 224 px)
and runs pre-LayerNorm transformer blocks.  MSN (Assran et al., ECCV 2022) uses
the final [CLS] token as the representation.

torchvision's :class:`~torchvision.models.VisionTransformer` only accepts square
images of its training size.  Audio is not square: a BYOL-A log-mel window is
64 mels × 96 frames.  This module provides what evaluating such a network on
audio needs (docs/methods.md §2.6, pitfall 4):

- :func:`window_bounds` cuts a clip's valid log-mel frames into consecutive
  windows (no window is made only of padding);
- :func:`resize_windows` stretches each window to the square training image,
  bilinearly and without antialiasing, like the RandomResizedCrop of training;
- :func:`pad_windows` zero-pads each window to patch multiples instead, giving
  a non-square patch grid of its own (e.g. 2 × 3 for 64 × 96 at patch 32);
- :func:`interpolate_pos_embedding` resamples the square positional grid to
  any grid (bicubic), keeping the [CLS] embedding;
- :func:`vit_forward` runs the network from its parts (bypassing torchvision's
  input check), and :func:`pool_tokens` reads [CLS] or the mean of the real
  patch tokens.

One mechanism serves both the padding of evaluation and the patch drop of MSN
training (Assran et al., ECCV 2022, §3: the anchor view's masked patches are
*dropped*, not replaced by a mask token): a boolean ``keep`` over each image's
``1 + L`` tokens ([CLS] first, always kept).  :func:`grid_keep` marks the
patches outside an image's own grid (padding) as not kept; MSN's
:func:`~evalbench.augment.views.patch_keep` marks the dropped patches; the
two combine with ``&``.  Positional embeddings are added to every token
*before* anything is dropped, so each kept token keeps its own position.
Then :func:`vit_forward`

- removes the tokens that are not kept (a gather) when every image keeps the
  same number of them: MSN's fixed drop ratio, so the transformer really
  runs on fewer tokens;
- otherwise (evaluation batches mixing window widths) keeps the full
  sequence and masks the not-kept tokens out of attention as keys
  (``key_padding_mask``); a kept token then attends to exactly the same keys
  as after removal, so both routes give the same kept-token outputs up to
  float rounding (tested to 1e-5).

Either way it returns the ``(N, 1 + L, D)`` layout with zeros at the tokens
not kept, and the mask of those tokens.
"""

from __future__ import annotations

import math
from collections import defaultdict
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.models.vision_transformer import EncoderBlock, VisionTransformer


def patch_multiple(n: int, patch: int) -> int:
    """Smallest positive multiple of ``patch`` that is at least ``n`` (one patch for ``n <= patch``)."""
    return max(1, -(-n // patch)) * patch


def window_bounds(n_valid: int, window: int, min_tail: int = 0) -> list[tuple[int, int]]:
    """Consecutive ``[start, end)`` frame windows covering a clip's ``n_valid`` valid frames.

    Windows hold ``window`` frames except the last, which holds the remainder.
    A last window shorter than ``min_tail`` frames is merged into the previous
    one (when there is one), so no window is a sliver of a few frames.  A clip
    always yields at least one window, and no window lies beyond the valid
    frames.

    Args:
        n_valid: Valid frames of the clip (values below 1 count as 1).
        window: Frames per window.
        min_tail: Shortest last window kept on its own (0: never merge).

    Returns:
        The window bounds, in order; e.g. 250 frames, window 96 → (0, 96),
        (96, 192), (192, 250); 197 frames with ``min_tail`` 48 → (0, 96), (96, 197).
    """
    n_valid = max(int(n_valid), 1)
    bounds = [(s, min(s + window, n_valid)) for s in range(0, n_valid, window)]
    if len(bounds) > 1 and bounds[-1][1] - bounds[-1][0] < min_tail:
        bounds[-2:] = [(bounds[-2][0], bounds[-1][1])]
    return bounds


def resize_windows(windows: list[torch.Tensor], size: int) -> torch.Tensor:
    """Stretch each ``(F, w)`` window to a ``size × size`` one-channel image.

    Bilinear, ``align_corners=False`` and no antialiasing: what torchvision's
    RandomResizedCrop (``antialias=False`` in MSN-audio, docs/methods.md §2.4) does
    to a tensor.  Each window is resized from its own width only.

    Args:
        windows: Log-mel windows ``(F, w_i)``, widths may differ.
        size: Output side in pixels.

    Returns:
        ``(N, 1, size, size)`` images.
    """
    ref = windows[0]
    out = ref.new_empty(len(windows), 1, size, size)
    by_width: dict[tuple[int, int], list[int]] = defaultdict(list)
    for i, w in enumerate(windows):
        by_width[tuple(w.shape)].append(i)
    for idx in by_width.values():
        batch = torch.stack([windows[i] for i in idx]).unsqueeze(1)
        out[idx] = F.interpolate(batch, size=(size, size), mode="bilinear", align_corners=False, antialias=False)
    return out


def pad_windows(windows: list[torch.Tensor], patch: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Zero-pad each ``(F, w)`` window to patch multiples and stack them on a common canvas.

    Window ``i`` covers the top-left ``patch_multiple(F) × patch_multiple(w_i)``
    pixels: its own patch grid.  The canvas is as wide as the widest window; the
    patches right of a window's own grid are made only of padding.

    Args:
        windows: Normalised log-mel windows ``(F, w_i)`` (zero is the mean level).
        patch: Patch size.

    Returns:
        ``(N, 1, H, W)`` zero-padded images and ``(N, 2)`` int64 own grids
        ``(rows, cols)`` in patches.
    """
    n_freq = windows[0].shape[0]
    height = patch_multiple(n_freq, patch)
    widths = [patch_multiple(w.shape[1], patch) for w in windows]
    images = windows[0].new_zeros(len(windows), 1, height, max(widths))
    for i, w in enumerate(windows):
        images[i, 0, :n_freq, : w.shape[1]] = w
    grids = torch.tensor([[height // patch, width // patch] for width in widths], dtype=torch.int64)
    return images, grids


def square_grid(pos_embedding: torch.Tensor) -> tuple[int, int]:
    """The ``(g, g)`` grid of a ``(1, 1 + g², D)`` positional embedding (token 0 is [CLS])."""
    n = pos_embedding.shape[1] - 1
    g = math.isqrt(n)
    if g * g != n:
        raise ValueError(f"positional embedding of {n} patch tokens is not a square grid")
    return g, g


def interpolate_pos_embedding(pos_embedding: torch.Tensor, grid: tuple[int, int]) -> torch.Tensor:
    """Resample a square positional-embedding grid to ``grid = (rows, cols)``, keeping [CLS].

    The patch embeddings are treated as a ``D``-channel image on the training
    grid and resampled bicubically with ``align_corners=False`` (cell centres
    map to cell centres), the standard way of running a ViT at another
    resolution (Dosovitskiy et al., ICLR 2021, §3.2; docs/methods.md §2.6 pitfall 4).
    The training grid is returned unchanged.

    Args:
        pos_embedding: ``(1, 1 + g², D)``, token 0 for [CLS].
        grid: Target grid in patches.

    Returns:
        ``(1, 1 + rows·cols, D)``.
    """
    g = square_grid(pos_embedding)
    if tuple(grid) == g:
        return pos_embedding
    d = pos_embedding.shape[-1]
    patches = pos_embedding[:, 1:].reshape(1, g[0], g[1], d).permute(0, 3, 1, 2)
    patches = F.interpolate(patches, size=tuple(grid), mode="bicubic", align_corners=False)
    return torch.cat([pos_embedding[:, :1], patches.permute(0, 2, 3, 1).reshape(1, -1, d)], dim=1)


def build_vit(
    image_size: int, patch: int, layers: int, heads: int, width: int, mlp: int, stem: Literal["1to3", "1ch"]
) -> VisionTransformer:
    """A torchvision ViT for one-channel input, without classification head.

    ``1to3`` replaces ``conv_proj`` by ``Sequential(Conv2d(1→3, 1×1), Conv2d(3→D, p, stride p))``
    (the MSN-audio stem: the log-mel becomes a 3-channel pseudo-image for the
    RGB patch embedding); ``1ch`` by a single ``Conv2d(1→D, p, stride p)``,
    initialised like torchvision's (truncated normal, std ``1/sqrt(fan_in)``).

    Args:
        image_size: Training image side (sets the positional grid).
        patch: Patch size.
        layers: Transformer blocks.
        heads: Attention heads.
        width: Token width D.
        mlp: MLP width.
        stem: ``1to3`` or ``1ch``.

    Returns:
        The network; use :func:`vit_forward` to run it on any patch grid.
    """
    vit = VisionTransformer(image_size, patch, layers, heads, width, mlp)
    vit.heads = nn.Identity()
    if stem == "1to3":
        vit.conv_proj = nn.Sequential(nn.Conv2d(1, 3, kernel_size=1), vit.conv_proj)
    else:
        conv = nn.Conv2d(1, width, kernel_size=patch, stride=patch)
        nn.init.trunc_normal_(conv.weight, std=math.sqrt(1 / (patch * patch)))
        nn.init.zeros_(conv.bias)
        vit.conv_proj = conv
    return vit


def grid_keep(grids: torch.Tensor, rows: int, cols: int) -> torch.Tensor:
    """Tokens of images whose own grid is the top-left ``grids[i]`` part of a ``rows × cols`` patch grid.

    Args:
        grids: ``(N, 2)`` own grids (rows, cols) in patches.
        rows: Patch rows of the images.
        cols: Patch columns of the images.

    Returns:
        ``(N, 1 + rows·cols)`` bool, True = a real token ([CLS] and the patches
        inside the own grid), False = a patch made only of padding.

    Raises:
        ValueError: A grid outside ``rows × cols``.
    """
    if bool((grids < 1).any()) or bool((grids[:, 0] > rows).any()) or bool((grids[:, 1] > cols).any()):
        raise ValueError(f"own grids must lie within the {rows}×{cols} patch grid of the images")
    r = torch.arange(rows, device=grids.device)[None, :, None]
    c = torch.arange(cols, device=grids.device)[None, None, :]
    inside = ((r < grids[:, 0, None, None]) & (c < grids[:, 1, None, None])).flatten(1)
    return torch.cat([torch.ones_like(inside[:, :1]), inside], dim=1)


def _grid_positions(pos_embedding: torch.Tensor, grids: torch.Tensor, rows: int, cols: int) -> torch.Tensor:
    """Per-image positions for images whose own grid is the top-left part of ``rows × cols`` (zero outside it)."""
    n, d = grids.shape[0], pos_embedding.shape[-1]
    pos = pos_embedding.new_zeros(n, 1 + rows * cols, d)
    r = torch.arange(rows, device=pos_embedding.device)[:, None]
    c = torch.arange(cols, device=pos_embedding.device)[None, :]
    for gr, gc in torch.unique(grids, dim=0).tolist():
        inside = ((r < gr) & (c < gc)).flatten()
        full = pos_embedding.new_zeros(1 + rows * cols, d)
        own = interpolate_pos_embedding(pos_embedding, (gr, gc))[0]
        full[0] = own[0]
        full[1:][inside] = own[1:]
        pos[((grids[:, 0] == gr) & (grids[:, 1] == gc)).to(pos_embedding.device)] = full
    return pos


def _block(block: EncoderBlock, x: torch.Tensor, key_padding_mask: torch.Tensor | None) -> torch.Tensor:
    """One pre-LN transformer block (torchvision's ``EncoderBlock`` maths) with a key-padding mask."""
    h = block.ln_1(x)
    h, _ = block.self_attention(h, h, h, key_padding_mask=key_padding_mask, need_weights=False)
    x = x + block.dropout(h)
    return x + block.mlp(block.ln_2(x))


def _run_blocks(vit: VisionTransformer, x: torch.Tensor, keep: torch.Tensor | None) -> torch.Tensor:
    """Dropout, blocks and final LayerNorm on ``(N, 1 + L, D)`` tokens, of which only ``keep`` take part."""
    x = vit.encoder.dropout(x)
    if keep is None:
        for block in vit.encoder.layers:
            x = _block(block, x, None)
        return vit.encoder.ln(x)
    counts = keep.sum(1)
    if bool((counts == counts[0]).all()):  # same count everywhere: remove the other tokens
        index = keep.nonzero()[:, 1].reshape(x.shape[0], -1, 1).expand(-1, -1, x.shape[-1])
        kept = x.gather(1, index)
        for block in vit.encoder.layers:
            kept = _block(block, kept, None)
        return torch.zeros_like(x).scatter(1, index, vit.encoder.ln(kept))
    for block in vit.encoder.layers:  # ragged: mask them out of attention as keys
        x = _block(block, x, ~keep)
    return vit.encoder.ln(x).masked_fill(~keep[..., None], 0.0)


def vit_forward(
    vit: VisionTransformer,
    images: torch.Tensor,
    grids: torch.Tensor | None = None,
    keep: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Run a torchvision ViT on images of any patch-multiple size, optionally on a subset of tokens.

    The network's own modules are applied in torchvision's order (patch
    embedding, [CLS], positions, dropout, blocks, final LayerNorm) without its
    square-size check.  Positions are interpolated to each image's patch grid
    and added before any token is left out (see the module docstring).

    Args:
        vit: Network from :func:`build_vit` (or any torchvision ViT).
        images: ``(N, C, H, W)``, ``H`` and ``W`` multiples of the patch size.
        grids: Optional ``(N, 2)`` own patch grids (rows, cols).  Patches
            outside an image's own top-left grid are padding (not kept), and the
            image's positions are interpolated to its own grid.  None: every
            patch is real.
        keep: Optional ``(N, 1 + L)`` bool over the tokens ([CLS] first, which
            must be kept): False drops the token (MSN's patch drop,
            :func:`~evalbench.augment.views.patch_keep`).  Combined with the
            padding of ``grids``.

    Returns:
        Tokens ``(N, 1 + L, D)`` after the final LayerNorm (token 0 is [CLS],
        then the patches row by row; zeros where not kept) and the ``(N, 1 + L)``
        mask of the tokens not kept (True = padding or dropped), or None when
        every token is kept.

    Raises:
        ValueError: ``keep`` of the wrong shape or dropping [CLS]; grids outside the images.
    """
    x = vit.conv_proj(images)  # (N, D, rows, cols)
    n, _, rows, cols = x.shape
    x = x.flatten(2).transpose(1, 2)
    if grids is None:
        pos, real = interpolate_pos_embedding(vit.encoder.pos_embedding, (rows, cols)), None
    else:
        grids = grids.to(images.device)
        real = grid_keep(grids, rows, cols)
        pos = _grid_positions(vit.encoder.pos_embedding, grids, rows, cols)
    if keep is not None:
        keep = keep.to(images.device)
        if keep.shape != (n, 1 + rows * cols) or not bool(keep[:, 0].all()):
            raise ValueError(f"keep: expected ({n}, {1 + rows * cols}) bool with [CLS] kept, got {tuple(keep.shape)}")
        real = keep if real is None else real & keep
    if real is not None and bool(real.all()):
        real = None
    x = torch.cat([vit.class_token.expand(n, -1, -1), x], dim=1) + pos
    return _run_blocks(vit, x, real), (None if real is None else ~real)


def pool_tokens(
    tokens: torch.Tensor, key_padding_mask: torch.Tensor | None, output: Literal["cls", "mean_patches"]
) -> torch.Tensor:
    """One vector per image: the [CLS] token, or the mean of the real (non-padding) patch tokens.

    Args:
        tokens: ``(N, 1 + L, D)`` from :func:`vit_forward`.
        key_padding_mask: ``(N, 1 + L)`` True for padding, or None.
        output: ``cls`` or ``mean_patches``.

    Returns:
        ``(N, D)``.
    """
    if output == "cls":
        return tokens[:, 0]
    patches = tokens[:, 1:]
    if key_padding_mask is None:
        return patches.mean(1)
    keep = (~key_padding_mask[:, 1:]).unsqueeze(-1).to(tokens.dtype)
    return (patches * keep).sum(1) / keep.sum(1).clamp(min=1.0)


__all__ = [
    "build_vit",
    "grid_keep",
    "interpolate_pos_embedding",
    "pad_windows",
    "patch_multiple",
    "pool_tokens",
    "resize_windows",
    "vit_forward",
    "window_bounds",
]
