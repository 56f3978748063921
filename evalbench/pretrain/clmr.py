"""CLMR: Contrastive Learning of Musical Representations (Spijkervet & Burgoyne, ISMIR 2021).

SimCLR (Chen et al., ICML 2020) on raw 22,050 Hz audio, on the adapter's own
network (:class:`evalbench.adapters.clmr.SampleCNN`), so the exported file loads
into ``evalbench run --encoder <name>`` unchanged (METHODS §4):

1. Two views per clip, each an independent uniform random crop of 59,049
   samples (3^10 ≈ 2.68 s; clips shorter than that are zero-padded on the right)
   followed by CLMR's augmentation chain (:mod:`evalbench.augment.clmr`:
   polarity 0.8, noise 0.01, gain 0.3, high/low-pass 0.8, delay 0.3, pitch 0.6,
   reverb 0.6), batched on the device, in torch (no sox).
2. SampleCNN → 512-d → projector Linear(512→512, no bias) → ReLU →
   Linear(512→64, no bias) (v2 config; 128 in v1) → NT-Xent with τ = 0.5, its
   negatives drawn from the global batch under torchrun.
3. Adam, lr 3e-4, batch 48 (the ``paper`` preset; the README's 10,000 epochs on
   MagnaTagATune are a recipe value, the corpus here is the user's).

SampleCNN starts from PyTorch's default initialisation as in CLMR's code (the
adapter's random twin uses He initialisation; :func:`default_init` undoes it).
Export: the encoder without the projector, which SimCLR discards.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from evalbench.adapters.clmr import SampleCNN
from evalbench.adapters.options.clmr import CHUNK_SAMPLES, SAMPLE_RATE
from evalbench.augment.clmr import ClmrChain
from evalbench.pretrain.base import DataRequest, PretrainMethod, default_init
from evalbench.pretrain.data import CropDataset, EpochSampler
from evalbench.pretrain.distributed import all_gather_with_grad
from evalbench.pretrain.losses import nt_xent
from evalbench.specs.recipe import TrainSpec


@dataclass(frozen=True)
class ClmrRecipeOptions:
    """CLMR options (``options`` in ``encoders/recipes/clmr.yaml``).

    Attributes:
        projection: Projector output width (64 in CLMR's v2 config, 128 in v1).
        temperature: NT-Xent τ (0.5).
        augment: Apply the augmentation chain (off only for tests and ablations).
    """

    projection: int = 64
    temperature: float = 0.5
    augment: bool = True

    def __post_init__(self) -> None:
        if self.projection < 1 or not self.temperature > 0:
            raise ValueError("projection must be >= 1 and temperature > 0")


class TwoCrops(torch.utils.data.Dataset):
    """Two independent random crops of each clip (CLMR's two views): two crop streams with different seeds."""

    def __init__(self, first: CropDataset, second: CropDataset) -> None:
        self.first, self.second = first, second

    def __len__(self) -> int:
        return len(self.first)

    def __getitem__(self, key: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor]:
        return self.first[key], self.second[key]


class Clmr(PretrainMethod):
    """CLMR (see the module docstring)."""

    NAME = "clmr"
    FAMILY = "clmr"
    POOLING = "mean"
    OPTIONS = ClmrRecipeOptions
    CITATION = "Spijkervet & Burgoyne, Contrastive Learning of Musical Representations, ISMIR 2021 (arXiv 2103.09410)."

    def __init__(self, options: ClmrRecipeOptions, train: TrainSpec) -> None:
        super().__init__(options, train)
        self.encoder = SampleCNN()
        default_init(self.encoder)
        self.projector = nn.Sequential(
            nn.Linear(512, 512, bias=False), nn.ReLU(inplace=True), nn.Linear(512, options.projection, bias=False)
        )
        self.chain = ClmrChain() if options.augment else None

    @property
    def sample_rate(self) -> int:
        """22,050 Hz."""
        return SAMPLE_RATE

    @property
    def unit_seconds(self) -> float:
        """59,049 samples."""
        return CHUNK_SAMPLES / SAMPLE_RATE

    @property
    def crop_mode(self) -> str:
        """Uniform random crop, right zero-padding for short clips."""
        return "v2"

    def make_data(self, req: DataRequest) -> tuple[Any, Any]:
        """Pairs of independent crops (seeds ``seed`` and ``seed + 1``) and the epoch-permutation sampler."""
        crops = [
            CropDataset(req.corpus, SAMPLE_RATE, self.unit_seconds, "v2", s, req.audio_cache)
            for s in (req.seed, req.seed + 1)
        ]
        sampler = EpochSampler(len(req.corpus.files), self.train_spec.batch_size, req.seed, req.rank, req.world)
        return TwoCrops(*crops), sampler

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], generator: torch.Generator) -> torch.Tensor:
        """NT-Xent between the projections of the two augmented views."""
        v1, v2 = batch
        if self.chain is not None:
            with torch.no_grad(), torch.autocast(v1.device.type, enabled=False):
                v1, v2 = self.chain(v1.float(), generator), self.chain(v2.float(), generator)
        z = self.projector(self.encoder(torch.cat([v1, v2])))
        z1, z2 = z.float().chunk(2)
        return nt_xent(all_gather_with_grad(z1), all_gather_with_grad(z2), self.options.temperature)

    @torch.no_grad()
    def embed_for_monitor(self, wav: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """Mean SampleCNN encoding of each clip's consecutive chunks, by the ``clmr`` adapter's own ``encode``.

        The adapter is built once and given the live encoder (shared, not copied); it is kept outside the
        module tree so it never enters the state dict.
        """
        from evalbench.adapters.clmr import ClmrEncoder
        from evalbench.adapters.options.clmr import ClmrOptions
        from evalbench.adapters.pooling import pool_mean

        view = self.__dict__.get("_monitor_view")
        if view is None:
            view = ClmrEncoder(ClmrOptions())
            view.net = self.encoder
            self.__dict__["_monitor_view"] = view
        return pool_mean(view.encode(wav, lengths))

    def encoder_network(self) -> nn.Module:
        """The SampleCNN without the projector."""
        return self.encoder

    def encoder_options(self) -> dict[str, Any]:
        """The ``clmr`` adapter has no input options beyond its fixed rate and chunk."""
        return {}


__all__ = ["Clmr", "ClmrRecipeOptions", "TwoCrops"]
