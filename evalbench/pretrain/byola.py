"""BYOL-A: BYOL for Audio (Niizumi et al., IJCNN 2021; v2: IEEE/ACM TASLP 2023).

The recipe of METHODS §1, on the adapter's own networks
(:func:`evalbench.adapters.byola_nets.build_network`), so the exported file
loads into ``evalbench run --encoder <name>`` unchanged:

1. A 0.95 s crop (15,200 samples at 16 kHz; v1: centred zero pad then a random
   window, v2: random crop and right pad) → 64-band Slaney log-mel, 96 frames
   (the evaluation front end, :class:`~evalbench.adapters.frontend.LogMelFrontEnd`).
2. Pre-normalisation with a scalar mean and std of the training log-mels,
   computed once before training over up to ``norm_clips`` (10,000) random
   training crops (v2's rule; NOTE: v1 kept a running estimate over its first
   epochs instead).
3. Two views, each through log-mixup-exp with a FIFO memory bank of 2,048
   pre-normalised inputs (α = 0.2 in v2, 0.4 in the v1 paper), Random Resize
   Crop (bicubic, ``align_corners=True``, frequency never extended), and in v2
   the Random Linear Fader; the 2B views are standardised together
   (post-normalisation).
4. Online: encoder → mean+max pooling → projector → predictor; target (EMA of
   the online encoder and projector, τ = 0.99 constant, parameters only):
   encoder → pooling → projector.  Loss: symmetric BYOL loss.
5. Adam, no weight decay, constant lr 1e-4 (v2) / 3e-4 (v1), batch 256,
   100 epochs (the ``paper`` preset; AudioSet is not available here, so the
   corpus is the user's).

Export: the online encoder, as BYOL keeps it after training (Grill et al.
2020, §3.1: "we only keep the encoder f_θ"); ``export: target`` is an option.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Literal

import torch
from torch import nn

from evalbench.adapters.base import Frames
from evalbench.adapters.byola_nets import build_network
from evalbench.adapters.frontend import LogMelFrontEnd
from evalbench.adapters.options import LogMelFrontEndOptions
from evalbench.adapters.pooling import pool_mean_max
from evalbench.augment.spectrogram import MixupBank, PostNorm, RandomLinearFader, RandomResizeCrop
from evalbench.pretrain.base import PretrainMethod
from evalbench.pretrain.ema import ema_update, make_target
from evalbench.pretrain.heads import MLPHead
from evalbench.pretrain.losses import symmetric_byol_loss
from evalbench.specs.fields import to_dict
from evalbench.specs.recipe import TrainSpec


@dataclass(frozen=True)
class ByolaRecipeOptions:
    """BYOL-A options (``options`` in ``encoders/recipes/byola.yaml``).

    Attributes:
        version: ``v2`` (TASLP 2023, default) or ``v1`` (IJCNN 2021).
        feature_d: Output dimension: 3072 for v2; 512, 1024 or 2048 for v1.
        frontend: Log-mel front end (BYOL-A's, METHODS §1.1).
        unit_seconds: Training crop (0.95 s → 96 frames).
        norm_clips: Crops used for the pre-normalisation statistics (v2: 10,000).
        mixup_alpha: Mixup λ ~ U(0, α) (v2: 0.2; v1 paper: 0.4).
        mixup_bank: Memory-bank size (2,048).
        log_mixup_exp: Mix in the exponentiated domain (BYOL-A's default) or linearly.
        virtual_crop_scale: RRC canvas scale (F, T) (1.0, 1.5).
        crop_scale: RRC crop-size range (0.6, 1.5).
        fader: Random Linear Fader (v2's recipe; null: on for v2, off for v1).
        fader_gain: RLF ramp end points ~ U(−gain, gain).
        tau: EMA decay of the target (0.99, constant).
        hidden: Projector/predictor hidden width (4096).
        projection: Projection width (256).
        export: Which encoder to export (``online``, as BYOL does, or ``target``).
    """

    version: Literal["v1", "v2"] = "v2"
    feature_d: int = 3072
    frontend: LogMelFrontEndOptions = field(default_factory=LogMelFrontEndOptions)
    unit_seconds: float = 0.95
    norm_clips: int = 10000
    mixup_alpha: float = 0.2
    mixup_bank: int = 2048
    log_mixup_exp: bool = True
    virtual_crop_scale: tuple[float, float] = (1.0, 1.5)
    crop_scale: tuple[float, float] = (0.6, 1.5)
    fader: bool | None = None
    fader_gain: float = 1.0
    tau: float = 0.99
    hidden: int = 4096
    projection: int = 256
    export: Literal["online", "target"] = "online"

    def __post_init__(self) -> None:
        if self.version == "v1" and self.feature_d not in (512, 1024, 2048):
            raise ValueError(f"feature_d: v1 has 512, 1024 or 2048, got {self.feature_d}")
        if self.version == "v2" and self.feature_d != 3072:
            raise ValueError(f"feature_d: v2's output is 3072 (1024 conv + 2048 MLP), got {self.feature_d}")
        if not 0 <= self.tau <= 1:
            raise ValueError(f"tau: must be in [0, 1], got {self.tau}")
        if self.mixup_bank < 1 or self.norm_clips < 1:
            raise ValueError("mixup_bank and norm_clips: must be >= 1")


@torch.no_grad()
def fit_prenorm(method: Any, clips: Iterator[torch.Tensor]) -> dict[str, float]:
    """BYOL-A v2's pre-normalisation: one scalar mean and std over every log-mel value of the given crops.

    Shared by the log-mel methods (BYOL-A, MSN-audio): ``method`` has
    ``_logmel(wav) -> (B, 1, F, T)`` and a ``norm_stats`` buffer, which is set.
    """
    total = total_sq = 0.0
    count = 0
    for wav in clips:
        x = method._logmel(wav.to(method.norm_stats.device)).double()
        total, total_sq, count = total + float(x.sum()), total_sq + float((x**2).sum()), count + x.numel()
    if count == 0:
        raise ValueError("no training audio for the pre-normalisation statistics")
    mean = total / count
    std = max(total_sq / count - mean**2, 1e-12) ** 0.5
    method.norm_stats.copy_(torch.tensor([mean, std]))
    return {"norm_mean": mean, "norm_std": std}


def pooled(net: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """BYOL-A's representation: time mean + time max of the encoder's frames ``(B, T', D)``, summed."""
    frames = net(x)
    return frames.mean(dim=1) + frames.amax(dim=1)


class ByolA(PretrainMethod):
    """BYOL-A (see the module docstring).

    Args:
        options: Recipe options.
        train: Loop settings.
    """

    NAME = "byola"
    FAMILY = "byola"
    POOLING = "mean_max"
    OPTIONS = ByolaRecipeOptions
    CITATION = (
        "Niizumi et al., BYOL for Audio: Self-Supervised Learning for General-Purpose Audio Representation, "
        "IJCNN 2021; BYOL for Audio: Exploring Pre-trained General-purpose Audio Representations, TASLP 31, 2023."
    )

    def __init__(self, options: ByolaRecipeOptions, train: TrainSpec) -> None:
        super().__init__(options, train)
        o = options
        self.frontend = LogMelFrontEnd(o.frontend)
        self.online = nn.ModuleDict(
            {
                "encoder": build_network(o.version, o.feature_d),
                "projector": MLPHead(o.feature_d, o.hidden, o.projection),
            }
        )
        self.predictor = MLPHead(o.projection, o.hidden, o.projection)
        self.target = make_target(self.online)
        self.register_buffer("norm_stats", torch.full((2,), float("nan")))
        self.mixup = MixupBank(o.mixup_alpha, o.mixup_bank, o.log_mixup_exp)
        self.rrc = RandomResizeCrop(o.virtual_crop_scale, o.crop_scale, o.crop_scale)
        use_fader = o.version == "v2" if o.fader is None else o.fader
        self.fader = RandomLinearFader(o.fader_gain) if use_fader else None
        self.post_norm = PostNorm()
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
        """``v1`` or ``v2`` crop/pad (METHODS §1.1)."""
        return self.options.version

    @torch.no_grad()
    def _logmel(self, wav: torch.Tensor) -> torch.Tensor:
        return self.frontend(wav.float()).unsqueeze(1)  # (B, 1, 64, 96)

    def prepare(self, clips: Iterator[torch.Tensor]) -> dict[str, Any]:
        """Scalar mean and std over every log-mel value of the given training crops."""
        return fit_prenorm(self, clips)

    def _view(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        x = self.rrc(self.mixup(x, generator), generator)
        return self.fader(x, generator) if self.fader is not None else x

    def training_step(self, wav: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """Symmetric BYOL loss of two augmented views of each crop."""
        mean, std = self.norm_stats.tolist()
        with torch.no_grad(), torch.autocast(wav.device.type, enabled=False):
            x = (self._logmel(wav) - mean) / std
            views = self.post_norm(torch.cat([self._view(x, generator), self._view(x, generator)]))
        online = self.predictor(self.online["projector"](pooled(self.online["encoder"], views)))
        with torch.no_grad():
            target = self.target["projector"](pooled(self.target["encoder"], views))
        p1, p2 = online.float().chunk(2)
        z1, z2 = target.float().chunk(2)
        return symmetric_byol_loss(p1, p2, z1, z2)

    def after_step(self, step: int) -> None:
        """EMA update of the target encoder and projector."""
        ema_update(self.target, self.online, self.options.tau)

    def encoder_network(self) -> nn.Module:
        """The online (or target) ``AudioNTT2020``/``AudioNTT2022`` encoder."""
        return (self.online if self.options.export == "online" else self.target)["encoder"]

    def encoder_options(self) -> dict[str, Any]:
        """``byola`` adapter options; input statistics are fitted downstream, as BYOL-A's evaluation does."""
        o = self.options
        return {"version": o.version, "feature_d": o.feature_d, "frontend": to_dict(o.frontend)}

    def embed_for_monitor(self, wav: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """``mean_max``-pooled embeddings of whole clips, as the ``byola`` adapter's ``encode`` computes them.

        Log-mel of each clip framed alone, scalar normalisation with the
        training statistics (``norm_stats``, where the adapter fits its own on
        the task), zeros past each clip's frames, the encoder masked by
        ``n_valid``, and masked mean + max over the valid output frames.
        """
        if not torch.isfinite(self.norm_stats).all():
            raise RuntimeError("BYOL-A: norm_stats are not fitted yet (prepare() runs before training)")
        mean, std = self.norm_stats.tolist()
        net = self.encoder_network()
        spec = self.frontend(wav.float(), lengths)
        n_in = self.frontend.frame_mask(lengths, spec.shape[-1]).sum(1)
        x = ((spec - mean) / std).unsqueeze(1)  # (B, 1, F, T)
        x = x * (torch.arange(x.shape[-1], device=x.device)[None, :] < n_in[:, None].to(x.device))[:, None, None, :]
        n_net = n_in.clamp(min=net.downsample)
        if x.shape[-1] < net.downsample:
            x = nn.functional.pad(x, (0, net.downsample - x.shape[-1]))
        emb = net(x, n_net)
        n_out = net.valid_output_frames(n_net).clamp(min=1, max=emb.shape[1])
        mask = torch.arange(emb.shape[1], device=emb.device)[None, :] < n_out[:, None].to(emb.device)
        return pool_mean_max(Frames(emb, mask))


__all__ = ["ByolA", "ByolaRecipeOptions", "fit_prenorm"]
