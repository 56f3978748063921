"""The ``msn`` adapter: a Masked Siamese Networks ViT on log-mel windows.

MSN (Assran et al., "Masked Siamese Networks for Label-Efficient Learning",
ECCV 2022) pretrains a Vision Transformer (Dosovitskiy et al., ICLR 2021) and
represents an input by the target encoder's [CLS] token.  The MSN-audio port
(docs/methods.md §2.4) uses torchvision's ViT-B/32 with a 1→3-channel 1×1 conv stem,
BYOL-A log-mels (64 mels, 10 ms frames) and 0.95 s training crops (96 frames)
stretched to 224 × 224 squares.

Evaluation (docs/methods.md §2.5–2.6).  Log-mel → scalar normalisation fitted on
the task's training split (as BYOL-A, §1.2) → the clip's *valid* frames cut into
consecutive windows of ``window_frames`` (:func:`~evalbench.adapters.vit.window_bounds`;
a last window shorter than ``min_tail_frames`` joins the previous one) → one
image per window → ViT → one vector per window ([CLS] or mean of real patch
tokens).  The frames returned are the windows (hop ``window_frames`` × 10 ms);
the encoder YAMLs pool them with ``mean``.  Two geometries:

- ``resize`` (default; the trained geometry): each window is resized
  bilinearly to 224 × 224, a 7 × 7 grid.  NOTE: a partial last window is
  stretched from its valid frames only (no padding enters the image), the
  same time-stretch RandomResizedCrop applied in training to crops narrower
  than 96 frames; ``min_tail_frames`` bounds the stretch of short tails.
- ``pad`` (the MSN-audio evaluation): each window is zero-padded after
  normalisation to patch multiples (64 × 96 → 2 × 3 patches) and encoded on
  its own grid with bicubically interpolated positions.  NOTE: MSN-audio
  padded whole clips to 64 × 576 and let padding take part in attention;
  evalbench windows the clip and masks patches made only of padding.

A clip's embedding depends only on its own valid frames (docs/protocol.md §4,
flaw 6): windows never read past them, each window is resized or positioned
on its own, and padding patches are masked out of attention and pooling.

Checkpoints: an evalbench checkpoint of family ``msn`` (written by
:meth:`MSNEncoder.export_checkpoint` and by ``evalbench pretrain msn``) or a
bare state dict of the backbone (keys of :func:`build_backbone`, optionally
prefixed ``module.`` or ``backbone.``).  ``imagenet_weights`` optionally
initialises from a torchvision ImageNet file on disk; nothing is downloaded.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import torch
from torch import nn
from torchvision.models.vision_transformer import VisionTransformer

from evalbench.adapters.base import Frames, FrozenEncoder, seeded
from evalbench.adapters.checkpoints import check_keys, load_checkpoint, load_into
from evalbench.adapters.normalize import FittedLogMel
from evalbench.adapters.options.msn import MSNOptions
from evalbench.adapters.vit import build_vit, pad_windows, pool_tokens, resize_windows, vit_forward, window_bounds
from evalbench.errors import EvalbenchError
from evalbench.specs.fields import to_dict

FAMILY = "msn"
WINDOWS_PER_FORWARD = 64  # memory bound of one ViT call; does not change outputs


def build_backbone(options: MSNOptions) -> VisionTransformer:
    """The ViT of ``options`` (arch, overrides, stem), randomly initialised from the global RNG."""
    patch, layers, heads, width, mlp = options.vit
    return build_vit(options.image_size, patch, layers, heads, width, mlp, options.stem)


def imagenet_state(path: Path, options: MSNOptions) -> dict[str, torch.Tensor]:
    """A torchvision ImageNet ViT state dict (e.g. ``vit_b_32-d86f8d99.pth``) on disk as :func:`build_backbone` keys.

    The classification head is dropped.  With the ``1to3`` stem the RGB
    patch embedding is kept after the 1×1 conv, which starts as channel
    replication (weights 1, bias 0), so the network first sees a grey
    image; with ``1ch`` the RGB kernels are summed, which is the same map.
    NOTE: MSN-audio trained its 1×1 conv from a random init; replication
    is evalbench's choice for using ImageNet weights without pretraining.
    Used by the adapter and by ``evalbench pretrain msn`` (nothing is downloaded).

    Args:
        path: The weights file.
        options: Adapter options (arch, overrides, image size, stem).

    Returns:
        A state dict that loads strictly into ``build_backbone(options)``.

    Raises:
        EvalbenchError: Unreadable file, or keys/shapes that differ from a
            torchvision ViT of the configured size (all listed).
    """
    state, _ = load_checkpoint(path)
    state = {k: v for k, v in state.items() if not k.startswith("heads.")}
    patch, layers, heads, width, mlp = options.vit
    with torch.device("meta"):  # shapes only, no memory
        reference = VisionTransformer(options.image_size, patch, layers, heads, width, mlp)
    reference.heads = nn.Identity()
    check_keys(reference, state, path, "torchvision ViT (options.imagenet_weights)")
    weight, bias = state.pop("conv_proj.weight"), state.pop("conv_proj.bias")
    if options.stem == "1to3":
        state["conv_proj.0.weight"] = torch.ones(3, 1, 1, 1, dtype=weight.dtype)
        state["conv_proj.0.bias"] = torch.zeros(3, dtype=weight.dtype)
        state["conv_proj.1.weight"], state["conv_proj.1.bias"] = weight, bias
    else:
        state["conv_proj.weight"], state["conv_proj.bias"] = weight.sum(1, keepdim=True), bias
    return state


class MSNEncoder(FittedLogMel, FrozenEncoder):
    """MSN ViT behind the encoder protocol: one embedding per log-mel window.

    ``needs_fit`` is True unless ``options`` gives fixed normalisation
    statistics.  Without a checkpoint the backbone is initialised from
    ``options.seed`` (the random-init floor) or from ``options.imagenet_weights``.

    Args:
        options: Adapter options.
    """

    VERSION = 1
    FAMILY = FAMILY
    WEIGHTS = "backbone"
    needs_fit = True

    def __init__(self, options: MSNOptions) -> None:
        super().__init__()
        self.options = options
        self.init_logmel(options.frontend, options.norm_mean, options.norm_std)
        with seeded(options.seed):
            self.backbone = build_backbone(options)
        self.backbone.eval()
        self.sample_rate = options.frontend.sample_rate
        self.embed_dim = options.vit[3]
        self.hop_seconds = options.hop_seconds

    @classmethod
    def from_options(cls, options: MSNOptions, checkpoint: Path | None) -> MSNEncoder:
        """Build from options and load weights.

        Args:
            options: Adapter options; the architecture must match the checkpoint.
            checkpoint: Evalbench ``msn`` checkpoint or bare backbone state
                dict; None for the seeded random init, or ImageNet init when
                ``options.imagenet_weights`` is set (ignored with a checkpoint).

        Returns:
            The adapter in eval mode.

        Raises:
            EvalbenchError: Unreadable or unsafe file, wrong family, or
                missing/unexpected/mis-shaped keys (all listed).
        """
        model = cls(options)
        if checkpoint is not None:
            model.load_weights(Path(checkpoint))
        elif options.imagenet_weights is not None:
            model.load_imagenet(Path(options.imagenet_weights).expanduser())
        return model.eval()

    def load_weights(self, path: Path) -> None:
        """Load backbone weights from an evalbench checkpoint or a bare state dict (exact key check)."""

        def not_imagenet(state: Mapping[str, torch.Tensor]) -> None:
            if any(k.startswith("heads.") for k in state):
                raise EvalbenchError(
                    f"{path}: looks like a torchvision ImageNet ViT (it has heads.* keys), not an MSN backbone; "
                    "set options.imagenet_weights to this file instead of checkpoint"
                )

        load_into(
            self.backbone,
            path,
            FAMILY,
            strip_prefixes=("module.", "backbone."),
            check=not_imagenet,
            options=to_dict(self.options),
        )

    def load_imagenet(self, path: Path) -> None:
        """Initialise from a torchvision ImageNet ViT state dict on disk (see :func:`imagenet_state`).

        Raises:
            EvalbenchError: Unreadable file, or keys/shapes that differ from a
                torchvision ViT of the configured size (all listed).
        """
        self.backbone.load_state_dict(imagenet_state(path, self.options), strict=True)

    def embed_windows(self, windows: list[torch.Tensor]) -> torch.Tensor:
        """One vector per normalised log-mel window ``(F, w_i)`` in the configured geometry and output.

        Args:
            windows: Normalised log-mel windows (widths may differ).

        Returns:
            ``(len(windows), D)``.
        """
        opts = self.options
        if opts.geometry == "resize":
            images, grids = resize_windows(windows, opts.image_size), None
        else:
            images, grids = pad_windows(windows, opts.vit[0])
        tokens, pad = vit_forward(self.backbone, images, grids)
        return pool_tokens(tokens, pad, opts.output)

    def encode_features(self, features: torch.Tensor, lengths: torch.Tensor) -> Frames:
        """Window embeddings ``(B, W, D)`` from the clips' log-mel, and the mask of windows that exist.

        ``encode(waveforms, lengths)`` (the encoder protocol) is this applied
        to :meth:`features`, the un-normalised log-mel; the normalisation,
        windowing and ViT run here.

        Args:
            features: ``(B, n_mels, T)`` log-mel of :meth:`features`.
            lengths: ``(B,)`` valid samples per clip.

        Returns:
            Frames, one per window; clip ``b`` has ``mask[b].sum()`` windows.

        Raises:
            RuntimeError: The normalisation was neither fitted nor fixed.
        """
        spec = self.normalizer(features)
        n_valid = self.frontend.frame_mask(lengths.to(spec.device), spec.shape[-1]).sum(1).tolist()
        size, min_tail = self.options.window_frames, self.options.min_tail_frames
        windows, owner, slot = [], [], []
        for b, n in enumerate(n_valid):
            for k, (start, end) in enumerate(window_bounds(n, size, min_tail)):
                windows.append(spec[b, :, start:end])
                owner.append(b)
                slot.append(k)
        step = WINDOWS_PER_FORWARD
        emb = torch.cat([self.embed_windows(windows[i : i + step]) for i in range(0, len(windows), step)])
        out = emb.new_zeros(len(n_valid), max(slot) + 1, emb.shape[-1])
        mask = torch.zeros(len(n_valid), max(slot) + 1, dtype=torch.bool, device=emb.device)
        out[owner, slot] = emb
        mask[owner, slot] = True
        return Frames(out, mask)


__all__ = ["MSNEncoder", "build_backbone", "imagenet_state"]
