"""CLAR: Contrastive Learning of Auditory Representations (Al-Tahan & Mohsenzadeh, AISTATS 2021).

SimCLR (Chen et al., ICML 2020) for 16 kHz audio plus an optional supervised
term trained at the same time (docs/methods.md §3), on the ``clar`` adapter's own
networks (:func:`evalbench.adapters.clar.build_network`), so the exported file
loads into ``evalbench run --encoder <name>`` with no conversion:

1. Each clip is cut to its first ``unit_seconds`` and zero-padded on the right
   (crop mode ``start``: the official ``pad``; 1 s for Speech Commands, 4 s
   for NSynth, 5 s for ESC in the paper; default 1 s, the clip length of the
   embedded corpus and of the synthetic suite).
2. Two views: two independent passes of the waveform chain
   (:mod:`evalbench.augment.clar`; default the paper's recommended fade + time
   masking, each family with p = 0.5), batched on the device.
3. Encoder: the 2-D ResNet-18 on the 3-channel front end
   (:class:`~evalbench.adapters.clar_frontend.ClarFrontEnd`, ``code`` or
   ``paper``) or the 1-D ResNet-18 on the waveform; frames averaged = the
   adaptive average pool, 512-d.  Each view is encoded in its own forward pass,
   as the official ``shared_step`` does (BatchNorm statistics per view;
   synchronised over ranks on CUDA, as the official SyncBN).
4. Heads (:mod:`evalbench.pretrain.heads`): without labels
   (``labelled_fraction`` 0) the three-layer projector and NT-Xent (τ 0.5);
   with labels the two-layer projector z, NT-Xent on normalise(z) and a
   classifier on z: ``L = NT-Xent(z₁, z₂) + CE(ŷ₁, y) + CE(ŷ₂, y)`` over the
   labelled clips of the batch (:func:`clar_loss`).  Under torchrun the loss is
   the global batch's (every rank's projections, logits and labels gathered),
   so negatives come from the whole batch as in SimCLR; the official loss used
   each GPU's own batch.
5. Labels (``--task``): a seeded (1337, as the official code), class-stratified
   subset of ``labelled_fraction`` of the training clips keeps its labels, the
   rest carry −1; :class:`LabelledFractionSampler` puts the same number of
   labelled clips into every batch.

Initialisation: the networks keep their own ResNet initialisation (Kaiming
normal, fan-out, for convolutions; BatchNorm 1 and 0), which is what the
official code's networks do (pl_bolts' ``resnet18``, a copy of torchvision's, and
its own ``resnet18_1D``); the heads start from PyTorch's defaults.

NOTE (official code): the sc09 semi-supervised dataset keeps only the labelled
subset (it drops the unlabelled clips), the NSynth one masks labels with −1 as
here, and batches are shuffled, so the labelled share varies from batch to
batch; here every task masks, and the share is fixed per batch (docs/methods.md §3.3).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from evalbench.adapters.clar import build_network
from evalbench.adapters.clar_frontend import ClarFrontEnd
from evalbench.adapters.options.clar import EMBED_DIM, SAMPLE_RATE
from evalbench.augment.clar import FAMILIES, RECOMMENDED, ClarChain
from evalbench.errors import EvalbenchError
from evalbench.pretrain.base import DataRequest, PretrainMethod
from evalbench.pretrain.data import EpochSampler
from evalbench.pretrain.distributed import all_gather_with_grad
from evalbench.pretrain.heads import ClarClassifier, ClarProjectionHead, ClarSemiSupervisedProjection
from evalbench.pretrain.losses import nt_xent
from evalbench.pretrain.supervised import LabelledCrops
from evalbench.specs.recipe import TrainSpec

LABEL_SEED = 1337  # the official code's random.Random(1337) shuffle of the labelled subset
UNLABELLED = -1


@dataclass(frozen=True)
class ClarRecipeOptions:
    """CLAR options (``options`` in ``encoders/recipes/clar.yaml``).

    Attributes:
        encoder: ``resnet2d`` (spectrogram image) or ``resnet1d`` (raw waveform).
        frontend: Front end of the 2-D encoder, ``code`` (the official code, default) or ``paper``.
        unit_seconds: Clip length after right-padding or cutting (1 s: Speech Commands and the suite).
        labelled_fraction: Share of the training clips that keep their labels
            (the paper: 1, 0.2, 0.1, 0.01); 0 trains contrastively only and needs no ``--task``.
        label_seed: Seed of the labelled subset (1337, the official code).
        n_classes: Classifier width, set from ``--task``'s classes.
        temperature: NT-Xent τ (0.5).
        augmentations: Waveform families of each view (:data:`evalbench.augment.clar.FAMILIES`);
            default the paper's recommended fade + time masking.
        p: Probability of each family per clip (0.5).
    """

    encoder: Literal["resnet2d", "resnet1d"] = "resnet2d"
    frontend: Literal["code", "paper"] = "code"
    unit_seconds: float = 1.0
    labelled_fraction: float = 0.0
    label_seed: int = LABEL_SEED
    n_classes: int | None = None
    temperature: float = 0.5
    augmentations: list[str] = field(default_factory=lambda: list(RECOMMENDED))
    p: float = 0.5

    def __post_init__(self) -> None:
        if not 0.0 <= self.labelled_fraction <= 1.0:
            raise ValueError(f"labelled_fraction: must lie in [0, 1], got {self.labelled_fraction}")
        if not 0.0 <= self.p <= 1.0 or not self.temperature > 0:
            raise ValueError("p must lie in [0, 1] and temperature must be > 0")
        shortest = 2048 if self.encoder == "resnet2d" else 256  # the code front end's window; the 1-D stem's margin
        if self.unit_seconds * SAMPLE_RATE < shortest:
            raise ValueError(f"unit_seconds: need at least {shortest} samples at 16 kHz, got {self.unit_seconds} s")
        unknown = sorted(set(self.augmentations) - set(FAMILIES))
        if unknown or len(set(self.augmentations)) != len(self.augmentations):
            bad = unknown or "a repeated name"
            raise ValueError(f"augmentations: need distinct names from {', '.join(FAMILIES)}; got {bad}")


def masked_cross_entropy(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy over the clips whose label is not −1; exactly 0 (still in the graph) when there are none."""
    keep = labels != UNLABELLED
    if not bool(keep.any()):
        return logits.float().sum() * 0.0
    return F.cross_entropy(logits[keep].float(), labels[keep])


def clar_loss(
    z1: torch.Tensor,
    z2: torch.Tensor,
    logits1: torch.Tensor,
    logits2: torch.Tensor,
    labels: torch.Tensor,
    tau: float = 0.5,
) -> torch.Tensor:
    """CLAR's objective ``NT-Xent(z₁, z₂) + CE(ŷ₁, y) + CE(ŷ₂, y)`` (docs/methods.md §3.3; official ``shared_step``).

    Args:
        z1: ``(N, D)`` projections of the first views (NT-Xent normalises them).
        z2: ``(N, D)`` projections of the second views.
        logits1: ``(N, C)`` class logits of the first views.
        logits2: ``(N, C)`` class logits of the second views.
        labels: ``(N,)`` class indices, −1 for unlabelled clips (masked out of both CE terms).
        tau: NT-Xent temperature.

    Returns:
        Scalar loss; a batch without labels gives exactly NT-Xent.
    """
    return nt_xent(z1, z2, tau) + masked_cross_entropy(logits1, labels) + masked_cross_entropy(logits2, labels)


def labelled_subset(classes: Sequence[int], fraction: float, seed: int = LABEL_SEED) -> np.ndarray:
    """Indices of the clips that keep their labels: per class, ``max(1, round(fraction·n_c))`` in a seeded order.

    One permutation ``default_rng(seed).permutation(n)`` orders all clips; each
    class keeps its first members in that order (stratified, so every class
    has at least one label).  ``fraction`` 0 keeps none, 1 keeps all.

    Returns:
        Sorted indices.
    """
    classes = np.asarray(classes)
    if fraction <= 0:
        return np.zeros(0, dtype=np.int64)
    order = np.random.default_rng(seed).permutation(len(classes))
    keep = []
    for c in np.unique(classes):
        members = order[classes[order] == c]
        keep.append(members[: max(1, round(fraction * len(members)))])
    return np.sort(np.concatenate(keep))


class LabelledFractionSampler(EpochSampler):
    """Batches with a fixed number of labelled clips, a pure function of (seed, step).

    Each global batch holds ``L = min(B, max(1, round(fraction·B)))`` labelled
    and ``B − L`` unlabelled clips.  The two pools are walked separately, each
    in seeded permutations cut into whole batches (``default_rng([seed, pool,
    pass])``), so no clip repeats within a batch and :meth:`iter_from` computes
    any step directly.  Under torchrun rank r takes labelled clips ``r, r + W,
    …`` and fills its share with unlabelled ones, so every rank's slice has the
    same labelled share and the ranks together see the single-process batch.

    Args:
        labelled: Per corpus file, whether it keeps its label.
        batch_size: Global batch B.
        fraction: Labelled share of a batch.
        seed: Seed of the batch order.
        rank: This rank.
        world: Number of ranks.

    Raises:
        EvalbenchError: A pool is smaller than its share of one batch.
    """

    def __init__(
        self, labelled: Sequence[bool], batch_size: int, fraction: float, seed: int, rank: int = 0, world: int = 1
    ) -> None:
        super().__init__(len(labelled), batch_size, seed, rank, world)
        mask = np.asarray(labelled, dtype=bool)
        self.pools = (np.flatnonzero(mask), np.flatnonzero(~mask))
        self.n_labelled = min(batch_size, max(1, round(fraction * batch_size)))
        self.shares = (self.n_labelled, batch_size - self.n_labelled)
        for pool, share, what in zip(self.pools, self.shares, ("labelled", "unlabelled"), strict=True):
            if share > len(pool):
                raise EvalbenchError(
                    f"labelled_fraction {fraction}: a batch of {batch_size} needs {share} {what} clips but the "
                    f"corpus has {len(pool)}; lower --batch-size or change options.labelled_fraction"
                )

    def _take(self, which: int, step: int) -> np.ndarray:
        pool, share = self.pools[which], self.shares[which]
        if share == 0:
            return pool[:0]
        per_pass = len(pool) // share
        rounds, position = divmod(step, per_pass)
        order = np.random.default_rng([self.seed, which + 1, rounds]).permutation(len(pool))
        return pool[order[position * share : (position + 1) * share]]

    def iter_from(self, step: int) -> Iterator[list[tuple[int, int]]]:
        """This rank's batches from global step ``step`` on: labelled clips first, then unlabelled."""
        if step < 0:
            raise ValueError(f"step must be ≥ 0, got {step}")
        share = self.batch_size // self.world_size
        while True:
            labelled, unlabelled = self._take(0, step), self._take(1, step)
            counts = [len(labelled[r :: self.world_size]) for r in range(self.world_size)]
            start = sum(share - c for c in counts[: self.rank])
            mine = [*labelled[self.rank :: self.world_size], *unlabelled[start : start + share - counts[self.rank]]]
            yield [(step // self.steps_per_epoch, int(i)) for i in mine]
            step += 1


class Clar(PretrainMethod):
    """CLAR (see the module docstring)."""

    NAME = "clar"
    USES_LABELS = True
    FAMILY = "clar"
    POOLING = "mean"
    OPTIONS = ClarRecipeOptions
    CITATION = (
        "Al-Tahan & Mohsenzadeh, CLAR: Contrastive Learning of Auditory Representations, AISTATS 2021 "
        "(arXiv 2010.09542)."
    )

    def __init__(self, options: ClarRecipeOptions, train: TrainSpec) -> None:
        super().__init__(options, train)
        self.encoder = build_network(options.encoder)
        self.frontend = ClarFrontEnd(options.frontend) if options.encoder == "resnet2d" else None
        self.semi_supervised = options.labelled_fraction > 0
        if self.semi_supervised:
            if options.n_classes is None:
                raise EvalbenchError(
                    f"pretrain clar: options.labelled_fraction is {options.labelled_fraction} but there are no "
                    "labels; pass --task NAME (its training portion and classes) or set options.labelled_fraction=0"
                )
            self.projector: nn.Module = ClarSemiSupervisedProjection(EMBED_DIM)
            self.classifier: nn.Module | None = ClarClassifier(options.n_classes)
        else:
            self.projector, self.classifier = ClarProjectionHead(EMBED_DIM), None
        self.chain = ClarChain(options.augmentations, options.p)

    @property
    def sample_rate(self) -> int:
        """16 kHz."""
        return SAMPLE_RATE

    @property
    def unit_seconds(self) -> float:
        """``options.unit_seconds``."""
        return self.options.unit_seconds

    @property
    def crop_mode(self) -> str:
        """The first ``unit_seconds``, zero-padded on the right (the official ``pad``)."""
        return "start"

    def make_data(self, req: DataRequest) -> tuple[Any, Any]:
        """Crops with their label (−1 when hidden) and the fixed-share sampler (the epoch sampler without labels).

        Raises:
            EvalbenchError: ``labelled_fraction`` > 0 without labels, or a corpus too small for the batch.
        """
        n, bs = len(req.corpus.files), self.train_spec.batch_size
        labels = [UNLABELLED] * n
        sampler = EpochSampler(n, bs, req.seed, req.rank, req.world)
        if self.semi_supervised:
            if req.labels is None:
                raise EvalbenchError(
                    "pretrain clar: options.labelled_fraction > 0 needs labels; pass --task NAME "
                    "or set options.labelled_fraction=0"
                )
            classes = [req.labels[f] for f in req.corpus.files]
            keep = labelled_subset(classes, self.options.labelled_fraction, self.options.label_seed)
            for i in keep:
                labels[i] = classes[i]
            mask = [y != UNLABELLED for y in labels]
            sampler = LabelledFractionSampler(mask, bs, self.options.labelled_fraction, req.seed, req.rank, req.world)
        dataset = LabelledCrops(
            req.corpus, SAMPLE_RATE, self.unit_seconds, "start", req.seed, req.audio_cache, labels=labels
        )
        return dataset, sampler

    def represent(self, wav: torch.Tensor) -> torch.Tensor:
        """The 512-d encoder output of ``(B, N)`` audio (front end in fp32, frames averaged)."""
        if self.frontend is not None:
            with torch.autocast(wav.device.type, enabled=False):
                image = self.frontend(wav.float())
            return self.encoder(image).mean(dim=1)
        return self.encoder(wav).mean(dim=1)

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], generator: torch.Generator) -> torch.Tensor:
        """CLAR's loss on two augmented views of each clip (NT-Xent, plus CE on the labelled ones)."""
        wav, labels = batch
        with torch.no_grad(), torch.autocast(wav.device.type, enabled=False):
            views = [self.chain(wav.float(), generator), self.chain(wav.float(), generator)]
        z1, z2 = (self.projector(self.represent(v)) for v in views)
        tau = self.options.temperature
        if self.classifier is None:
            return nt_xent(all_gather_with_grad(z1.float()), all_gather_with_grad(z2.float()), tau)
        logits1, logits2 = self.classifier(z1), self.classifier(z2)
        # Under torchrun every rank computes the loss of the global batch (negatives and labelled clips of all ranks).
        z1, z2, logits1, logits2, labels = (
            all_gather_with_grad(t) for t in (z1.float(), z2.float(), logits1, logits2, labels)
        )
        return clar_loss(z1, z2, logits1, logits2, labels, tau)

    def param_groups(self) -> list[dict[str, Any]]:
        """Weights take the recipe's decay; biases and BatchNorm parameters none.

        NOTE: the official code exempts parameters whose name contains ``bias``
        or ``bn``, which misses the BatchNorms named ``downsample.1`` and those
        of the heads; here every 1-D parameter (bias or norm) is exempt.
        """
        params = [p for p in self.parameters() if p.requires_grad]
        return [
            {"params": [p for p in params if p.ndim > 1]},
            {"params": [p for p in params if p.ndim <= 1], "weight_decay": 0.0},
        ]

    @torch.no_grad()
    def accuracy(self, batches: Iterator[tuple[torch.Tensor, torch.Tensor]]) -> float:
        """The classifier's accuracy on labelled crops (eval mode, no augmentation); NaN without a classifier."""
        if self.classifier is None:
            return float("nan")
        self.eval()
        right = total = 0
        for wav, labels in batches:
            logits = self.classifier(self.projector(self.represent(wav)))
            right += int((logits.argmax(1) == labels).sum())
            total += len(labels)
        return right / max(total, 1)

    @torch.no_grad()
    def embed_for_monitor(self, wav: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """Mean ResNet frames by the ``clar`` adapter's own ``encode`` on the live network and front end.

        The adapter view is built once and given this method's encoder and
        front end (shared, not copied); it is a plain attribute, so it never
        enters the state dict.
        """
        from evalbench.adapters.clar import ClarEncoder
        from evalbench.adapters.options.clar import ClarOptions
        from evalbench.adapters.pooling import pool_mean

        view = self.__dict__.get("_monitor_view")
        if view is None:
            view = ClarEncoder(ClarOptions(frontend=self.options.frontend, encoder=self.options.encoder))
            view.net, view.frontend = self.encoder, self.frontend
            self.__dict__["_monitor_view"] = view
        return pool_mean(view.encode(wav, lengths))

    def encoder_network(self) -> nn.Module:
        """The ResNet-18 without heads (what the ``clar`` adapter loads)."""
        return self.encoder

    def encoder_options(self) -> dict[str, Any]:
        """``clar`` adapter options: front end and encoder."""
        return {"frontend": self.options.frontend, "encoder": self.options.encoder}


__all__ = [
    "Clar",
    "ClarRecipeOptions",
    "LabelledFractionSampler",
    "clar_loss",
    "labelled_subset",
    "masked_cross_entropy",
]
