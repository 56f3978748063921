"""MSN: Masked Siamese Networks (Assran et al., ECCV 2022) on log-mels, the "msn-audio" recipe.

docs/methods.md §2.5 with the fidelity pitfalls of §2.6, on the ``msn`` adapter's
own network (:func:`evalbench.adapters.msn.build_backbone`: torchvision's
ViT-B/32 with a 1→3-channel 1×1 conv stem), so the exported target backbone
loads into ``evalbench run --encoder <name>`` with no conversion:

1. A 0.95 s crop (15,200 samples at 16 kHz; random crop, short clips padded
   at the end, BYOL-A v2's rule) → the BYOL-A log-mel (64 Slaney mels, 96
   frames) → pre-normalisation with a scalar mean and std fitted before
   training on up to ``norm_clips`` crops (as :mod:`evalbench.pretrain.byola`).
2. ``2 + focal_views`` views per clip, each through BYOL-A v2's log-mixup-exp
   (α = 0.2, one 2,048-clip bank; :class:`~evalbench.augment.views.MultiViewMixup`)
   and Random Linear Fader, then torchvision's RandomResizedCrop to a square,
   bilinear without antialiasing (:mod:`evalbench.augment.views`): a target
   and a random anchor at 224 px with scale (0.3, 1.0), ``focal_views`` (10)
   focal anchors at 96 px with scale (0.05, 0.3).  The 64 × 96 log-mel is
   stretched into the square.  All views of a step are then standardised
   together with one scalar mean and std (``view_norm: batch``).  NOTE:
   MSN-audio normalised each view with running statistics frozen after its
   first batches (docs/methods.md §2.4); BYOL-A v2's batch post-normalisation
   (§1.2), extended to every view of the step, is the stateless equivalent.
3. Patch drop (:func:`~evalbench.augment.views.patch_keep`) on the 224
   anchor only, ratio ``mask_ratio`` 0.3 (MSN's ratio for ViT-B, §2.2; the
   [CLS] token is never dropped and the mask covers 1 + 49 tokens so every
   patch can be kept, pitfall 3).  The dropped tokens are removed from the
   sequence after positions are added (:func:`evalbench.adapters.vit.vit_forward`).
   ``mask_focal: true`` also masks the focal views, as MSN-audio did (with
   ratio 0.15; the ``student`` preset), a deviation from MSN (pitfall 2).
4. Online backbone → [CLS] → projector (768 → 2048 → 2048 → 256, BN + GELU;
   :class:`~evalbench.pretrain.heads.MSNProjector`) on the anchors; the
   target (an EMA copy of backbone and projector) on the target view, no
   gradient.  Loss :func:`~evalbench.pretrain.losses.msn_loss` against 1,024
   learnable prototypes (an ``nn.Parameter`` passed as itself, pitfall 1;
   init U(±1/√256), no weight decay), τ = 0.1, T = 0.25, λ = 1, Sinkhorn 3.
   Under ``torchrun`` the loss sees the global batch (every rank's rows,
   gathered with gradient), which is what MSN's all-reduced Sinkhorn and
   me-max sums compute.
5. EMA momentum linear 0.996 → 1.0 over 1.25 × the run's steps (MSN, App. C;
   ``ema_schedule: constant`` keeps 0.996, as MSN-audio did).
6. Optimiser presets (``encoders/recipes/msn.yaml``): ``paper``, AdamW with
   linear warm-up 2e-4 → 1e-3 and cosine to 1e-6 over 1.25 × the run, weight
   decay cosine 0.04 → 0.4 except on biases, norms and prototypes, grad
   clip 3.0, batch 1024, 600 epochs (ViT-B/16's); ``student``, MSN-audio's
   AdamW lr 1e-4 with × 0.1 at epochs 100/200/300/400 of 500, batch 256.

Evaluation geometry.  A crop of the 64 × 96 log-mel with aspect ≤ 4/3 is at
most 86 frames wide (the widest 224 crop training ever showed; the typical
one is ~57 frames, and a full-height 64-row crop is 48–86 frames wide, 66 on
average), while the adapter's default 96-frame windows (96–143 with a merged
tail) stretch more time into the square than training ever did.  Evaluation
always shows all 64 mels, so the registered encoder uses windows of
``eval_window_frames`` = 64 frames: 64 mels × 64 frames, aspect 1, the median
of training's log-uniform aspect range.  A last window shorter than
``eval_min_tail_frames`` = 40 frames joins the previous one: 40 balances the
two ways a tail can leave training's 48–86-frame full-height range (a tail t
alone is 48/t too narrow, merged it is (64 + t)/86 too wide; equal at t ≈ 40),
so windows hold 40–103 frames and a 1 s clip (97 frames) is one window.
Long clips get ~1.5 × the windows of 96-frame windows.  NOTE: ``msn-random``
keeps the adapter's 96-frame windows; set ``eval_window_frames: 96``,
``eval_min_tail_frames: 48`` to compare at equal geometry.  NOTE: MSN-audio's
mel was torchaudio's default (HTK scale, no normalisation); evalbench's is
Slaney like BYOL-A's.

Export: the EMA target backbone (MSN evaluates the target encoder's [CLS];
the projector and prototypes are discarded).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import torch
from torch import nn

from evalbench.adapters.frontend import LogMelFrontEnd
from evalbench.adapters.msn import build_backbone, imagenet_state
from evalbench.adapters.options import LogMelFrontEndOptions
from evalbench.adapters.options.msn import MSNOptions
from evalbench.adapters.vit import vit_forward
from evalbench.augment.spectrogram import EPS, RandomLinearFader
from evalbench.augment.views import DEFAULT_RATIO, MultiViewMixup, RandomResizedCrop, patch_keep
from evalbench.pretrain.base import PretrainMethod
from evalbench.pretrain.byola import fit_prenorm
from evalbench.pretrain.distributed import all_gather_with_grad
from evalbench.pretrain.ema import ema_update, make_target
from evalbench.pretrain.heads import MSNProjector
from evalbench.pretrain.losses import msn_loss
from evalbench.specs.fields import to_dict
from evalbench.specs.recipe import TrainSpec

OVERRIDES = ("patch_size", "num_layers", "num_heads", "hidden_dim", "mlp_dim")


@dataclass(frozen=True)
class MsnRecipeOptions:
    """MSN options (``options`` in ``encoders/recipes/msn.yaml``); defaults are the ``paper`` preset's.

    Attributes:
        arch: torchvision ViT size (``vit_b_32``, MSN-audio's backbone).
        patch_size: Override of the arch's patch size (tests use small networks).
        num_layers: Override of the number of blocks.
        num_heads: Override of the number of heads.
        hidden_dim: Override of the token width.
        mlp_dim: Override of the MLP width.
        image_size: Side of the target and random anchor views (224).
        stem: ``1to3`` (MSN-audio's 1×1 conv to 3 channels) or ``1ch``.
        imagenet_weights: Local torchvision ImageNet ViT file to start from (never downloaded); null: random init.
        hidden: Projector hidden width (2048).
        projection: Projector output and prototype width (256).
        prototypes: Number of prototypes K (1024).
        temperature: τ of the prototype softmax (0.1).
        sharpen_temperature: Target sharpening T (0.25).
        me_max_weight: λ of the mean-entropy term (1).
        sinkhorn_iterations: Sinkhorn iterations on the targets (3; 0 = off).
        ema_start: EMA momentum at the first step (0.996).
        ema_schedule: ``linear`` to 1.0 over ``ema_span`` × the run (MSN) or ``constant`` (MSN-audio).
        ema_span: Length of the linear schedule in runs (1.25: the end value is never reached).
        frontend: Log-mel front end (BYOL-A's, docs/methods.md §1.1).
        unit_seconds: Training crop (0.95 s → 96 frames).
        norm_clips: Crops for the pre-normalisation statistics (BYOL-A v2: 10,000).
        mixup_alpha: Mixup λ ~ U(0, α) (BYOL-A v2 and MSN-audio: 0.2).
        mixup_bank: Mixup memory bank, in clips (2,048).
        log_mixup_exp: Mix in the exponentiated domain (BYOL-A's default).
        fader: Random Linear Fader after mixup (MSN-audio: on).
        fader_gain: RLF end points ~ U(−gain, gain) (1.0).
        random_scale: Crop-area range of the 224 views ((0.3, 1.0)).
        focal_size: Side of the focal views (96).
        focal_scale: Crop-area range of the focal views ((0.05, 0.3)).
        focal_views: Focal views per clip (10).
        crop_ratio: Aspect range of every crop (torchvision's (3/4, 4/3)).
        view_norm: ``batch``: standardise all views of a step with one scalar mean and std; ``none``.
        mask_ratio: Fraction of the 224 anchor's patches dropped (MSN ViT-B: 0.3; MSN-audio: 0.15).
        mask_focal: Drop patches of the focal views too (MSN-audio; not MSN).
        eval_window_frames: ``window_frames`` of the registered encoder (64; see the module docstring).
        eval_min_tail_frames: ``min_tail_frames`` of the registered encoder (40).
    """

    arch: Literal["vit_b_32", "vit_b_16", "vit_l_32", "vit_l_16"] = "vit_b_32"
    patch_size: int | None = None
    num_layers: int | None = None
    num_heads: int | None = None
    hidden_dim: int | None = None
    mlp_dim: int | None = None
    image_size: int = 224
    stem: Literal["1to3", "1ch"] = "1to3"
    imagenet_weights: str | None = None
    hidden: int = 2048
    projection: int = 256
    prototypes: int = 1024
    temperature: float = 0.1
    sharpen_temperature: float = 0.25
    me_max_weight: float = 1.0
    sinkhorn_iterations: int = 3
    ema_start: float = 0.996
    ema_schedule: Literal["linear", "constant"] = "linear"
    ema_span: float = 1.25
    frontend: LogMelFrontEndOptions = field(default_factory=LogMelFrontEndOptions)
    unit_seconds: float = 0.95
    norm_clips: int = 10000
    mixup_alpha: float = 0.2
    mixup_bank: int = 2048
    log_mixup_exp: bool = True
    fader: bool = True
    fader_gain: float = 1.0
    random_scale: tuple[float, float] = (0.3, 1.0)
    focal_size: int = 96
    focal_scale: tuple[float, float] = (0.05, 0.3)
    focal_views: int = 10
    crop_ratio: tuple[float, float] = DEFAULT_RATIO
    view_norm: Literal["batch", "none"] = "batch"
    mask_ratio: float = 0.3
    mask_focal: bool = False
    eval_window_frames: int = 64
    eval_min_tail_frames: int = 40

    def __post_init__(self) -> None:
        adapter = self.adapter_options()  # checks the ViT sizes and the evaluation windows
        if self.focal_size % adapter.vit[0]:
            raise ValueError(
                f"focal_size: must be a multiple of the patch size {adapter.vit[0]}, got {self.focal_size}"
            )
        if not 0 <= self.mask_ratio < 1:
            raise ValueError(f"mask_ratio: must lie in [0, 1), got {self.mask_ratio}")
        if not 0 <= self.ema_start <= 1 or self.ema_span < 1:
            raise ValueError(f"ema_start must lie in [0, 1] and ema_span >= 1, got {self.ema_start}, {self.ema_span}")
        if self.focal_views < 0 or self.prototypes < 2 or self.sinkhorn_iterations < 0 or self.norm_clips < 1:
            raise ValueError("focal_views and sinkhorn_iterations must be >= 0, prototypes >= 2, norm_clips >= 1")
        if not (self.temperature > 0 and 0 < self.sharpen_temperature <= 1):
            raise ValueError("temperature must be > 0 and sharpen_temperature in (0, 1]")

    def adapter_options(self, **changes: Any) -> MSNOptions:
        """The ``msn`` adapter options of the network trained and registered (resize geometry, [CLS])."""
        sizes = {k: getattr(self, k) for k in OVERRIDES}
        return MSNOptions(
            arch=self.arch, image_size=self.image_size, stem=self.stem, geometry="resize", output="cls",
            window_frames=self.eval_window_frames, min_tail_frames=self.eval_min_tail_frames,
            frontend=self.frontend, **sizes, **changes,
        )  # fmt: skip


def cls_token(backbone: nn.Module, images: torch.Tensor, keep: torch.Tensor | None = None) -> torch.Tensor:
    """The final [CLS] token ``(N, D)`` of ``images``, with only the ``keep`` tokens taking part."""
    return vit_forward(backbone, images, None, keep)[0][:, 0]


def standardise(*views: torch.Tensor) -> list[torch.Tensor]:
    """Standardise several view batches with one scalar mean and (Bessel) std over all their values."""
    n = sum(v.numel() for v in views)
    mean = sum(v.sum() for v in views) / n
    var = sum(((v - mean) ** 2).sum() for v in views) / max(n - 1, 1)
    std = var.sqrt().clamp(min=EPS)
    return [(v - mean) / std for v in views]


def global_views(anchors: torch.Tensor, targets: torch.Tensor, n_views: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Every rank's view-major anchors and targets, as one view-major global batch (identity without torchrun)."""
    b = targets.shape[0]
    per_sample = anchors.reshape(n_views, b, -1).transpose(0, 1).reshape(b, -1)
    per_sample, targets = all_gather_with_grad(per_sample), all_gather_with_grad(targets)
    total = targets.shape[0]
    return per_sample.reshape(total, n_views, -1).transpose(0, 1).reshape(n_views * total, -1), targets


class Msn(PretrainMethod):
    """MSN on log-mels (see the module docstring).

    Args:
        options: Recipe options.
        train: Loop settings.
    """

    NAME = "msn"
    FAMILY = "msn"
    POOLING = "mean"
    OPTIONS = MsnRecipeOptions
    CITATION = (
        "Assran et al., Masked Siamese Networks for Label-Efficient Learning, ECCV 2022; audio views and front end "
        "of Niizumi et al., BYOL for Audio, TASLP 2023, as combined by the MSN-audio student project."
    )

    def __init__(self, options: MsnRecipeOptions, train: TrainSpec) -> None:
        super().__init__(options, train)
        o = options
        adapter = o.adapter_options()
        backbone = build_backbone(adapter)
        if o.imagenet_weights is not None:
            backbone.load_state_dict(imagenet_state(Path(o.imagenet_weights).expanduser(), adapter), strict=True)
        self.online = nn.ModuleDict(
            {"backbone": backbone, "projector": MSNProjector(adapter.vit[3], o.hidden, o.projection)}
        )
        bound = 1.0 / math.sqrt(o.projection)
        self.prototypes = nn.Parameter(torch.empty(o.prototypes, o.projection).uniform_(-bound, bound))
        self.target = make_target(self.online)
        self.frontend = LogMelFrontEnd(o.frontend)
        self.register_buffer("norm_stats", torch.full((2,), float("nan")))
        self.mixup = MultiViewMixup(o.mixup_alpha, o.mixup_bank, o.log_mixup_exp)
        self.fader = RandomLinearFader(o.fader_gain) if o.fader else None
        self.random_crop = RandomResizedCrop(o.image_size, o.random_scale, o.crop_ratio)
        self.focal_crop = RandomResizedCrop(o.focal_size, o.focal_scale, o.crop_ratio)
        self.prepare_clips = o.norm_clips

    @property
    def sample_rate(self) -> int:
        """16 kHz (the front end's rate)."""
        return self.options.frontend.sample_rate

    @property
    def unit_seconds(self) -> float:
        """0.95 s."""
        return self.options.unit_seconds

    @property
    def crop_mode(self) -> str:
        """BYOL-A v2's crop/pad (MSN-audio is built on its code)."""
        return "v2"

    @torch.no_grad()
    def _logmel(self, wav: torch.Tensor) -> torch.Tensor:
        return self.frontend(wav.float()).unsqueeze(1)  # (B, 1, 64, 96)

    def prepare(self, clips: Iterator[torch.Tensor]) -> dict[str, Any]:
        """Scalar mean and std over every log-mel value of the given training crops (BYOL-A v2's rule)."""
        return fit_prenorm(self, clips)

    def param_groups(self) -> list[dict[str, Any]]:
        """Weights decay; biases, norm parameters (1-D) and the prototypes do not (MSN, App. C)."""
        decay, plain = [], []
        for name, p in self.online.named_parameters():
            (plain if p.ndim == 1 or name.endswith(".bias") else decay).append(p)
        return [
            {"params": decay},
            {"params": plain, "weight_decay": 0.0},
            {"params": [self.prototypes], "weight_decay": 0.0},
        ]

    def views(
        self, wav: torch.Tensor, generator: torch.Generator
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None, torch.Tensor | None, torch.Tensor | None]:
        """The target, anchor and focal views of a batch of crops, and the anchors' keep masks.

        Random draws, in order: mixup (λ, partners), fader, 224 crops (target
        then anchor), focal crops, anchor mask, focal mask.

        Returns:
            ``(target (B, 1, S, S), anchor (B, 1, S, S), focal (V·B, 1, s, s) or None,
            anchor keep (B, 1 + L) or None, focal keep or None)``.
        """
        o = self.options
        mean, std = self.norm_stats.tolist()
        if not math.isfinite(mean):
            raise RuntimeError("MSN: norm_stats are not fitted yet (prepare() runs before training)")
        x = (self._logmel(wav) - mean) / std
        b = x.shape[0]
        views = self.mixup.views(x, 2 + o.focal_views, generator)
        if self.fader is not None:
            views = self.fader(views, generator)
        large = self.random_crop(views[: 2 * b], generator)
        focal = self.focal_crop(views[2 * b :], generator) if o.focal_views else None
        if o.view_norm == "batch":
            large, *rest = standardise(large, *([] if focal is None else [focal]))
            focal = rest[0] if rest else None
        patch = self.online["backbone"].patch_size
        keep = patch_keep(b, 1 + (o.image_size // patch) ** 2, o.mask_ratio, generator) if o.mask_ratio else None
        keep_focal = None
        if focal is not None and o.mask_focal and o.mask_ratio:
            keep_focal = patch_keep(focal.shape[0], 1 + (o.focal_size // patch) ** 2, o.mask_ratio, generator)
        return large[:b], large[b:], focal, keep, keep_focal

    def training_step(self, wav: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """The MSN loss of one batch of crops (target view → EMA target; anchor and focal views → online)."""
        o = self.options
        with torch.no_grad(), torch.autocast(wav.device.type, enabled=False):
            target_view, anchor, focal, keep, keep_focal = self.views(wav, generator)
        with torch.no_grad():
            targets = self.target["projector"](cls_token(self.target["backbone"], target_view))
        tokens = [cls_token(self.online["backbone"], anchor, keep)]
        if focal is not None:
            tokens.append(cls_token(self.online["backbone"], focal, keep_focal))
        anchors = self.online["projector"](torch.cat(tokens))
        anchors, targets = global_views(anchors.float(), targets.float(), 1 + o.focal_views)
        return msn_loss(
            anchors, targets, self.prototypes, o.temperature, o.sharpen_temperature, o.me_max_weight,
            o.sinkhorn_iterations,
        )  # fmt: skip

    def ema_momentum(self, step: int) -> float:
        """Momentum of the EMA update after optimiser step ``step`` (0-based).

        ``linear``: ``m0 + (1 − m0)·step / (ema_span × total steps)``, capped at 1
        (MSN: 0.996 → 1.0 over 1.25 × the run); ``constant``: ``m0``.
        """
        o = self.options
        if o.ema_schedule == "constant":
            return o.ema_start
        total = getattr(self, "total_steps", None)
        if not total:
            raise RuntimeError("MSN: the linear EMA schedule needs set_schedule(total_steps, ...) first")
        return min(1.0, o.ema_start + (1.0 - o.ema_start) * step / (o.ema_span * total))

    def after_step(self, step: int) -> None:
        """EMA update of the target backbone and projector."""
        ema_update(self.target, self.online, self.ema_momentum(step))

    def encoder_network(self) -> nn.Module:
        """The EMA target backbone: the adapter's ``VisionTransformer``, without projector or prototypes."""
        return self.target["backbone"]

    def encoder_options(self) -> dict[str, Any]:
        """``msn`` adapter options: architecture, stem, resize geometry, evaluation windows, [CLS], front end."""
        o = self.options
        sizes = {k: getattr(o, k) for k in OVERRIDES if getattr(o, k) is not None}
        return {
            "arch": o.arch, **sizes, "image_size": o.image_size, "stem": o.stem, "geometry": "resize",
            "window_frames": o.eval_window_frames, "min_tail_frames": o.eval_min_tail_frames, "output": "cls",
            "frontend": to_dict(o.frontend),
        }  # fmt: skip

    @torch.no_grad()
    def embed_for_monitor(self, wav: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """Window-mean [CLS] embeddings by the ``msn`` adapter's own ``encode`` on the live target backbone.

        The adapter is built once per set of statistics with the training
        statistics fixed (where ``evalbench run`` fits its own on the task)
        and given the target backbone (shared, not copied); it is kept outside
        the module tree so it never enters the state dict.
        """
        from evalbench.adapters.msn import MSNEncoder
        from evalbench.adapters.pooling import pool_mean

        stats = tuple(self.norm_stats.tolist())
        if not all(math.isfinite(v) for v in stats):
            raise RuntimeError("MSN: norm_stats are not fitted yet (prepare() runs before training)")
        cached = self.__dict__.get("_monitor_view")
        if cached is None or cached[0] != stats:
            view = MSNEncoder(self.options.adapter_options(norm_mean=stats[0], norm_std=stats[1]))
            view.backbone = self.target["backbone"]
            cached = self.__dict__["_monitor_view"] = (stats, view)
        return pool_mean(cached[1].to(self.norm_stats.device).encode(wav, lengths))


__all__ = ["Msn", "MsnRecipeOptions", "cls_token", "global_views", "standardise"]
