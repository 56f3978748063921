"""Options of the ``msn`` adapter (torch-free, so ``evalbench encoders validate`` stays light).

MSN (Assran et al., "Masked Siamese Networks for Label-Efficient Learning",
ECCV 2022) trains a Vision Transformer (Dosovitskiy et al., "An Image is Worth
16x16 Words", ICLR 2021); the representation is the target encoder's [CLS]
token.  Its only audio port (the MSN-audio student project, docs/methods.md §2.4)
uses torchvision's ViT-B/32 (patch 32, 224×224 input, 768 wide, 12 layers and
heads, MLP 3072) with a 1→3-channel 1×1 convolution in front of the RGB patch
embedding, and feeds it BYOL-A log-mels (64 mels × 96 frames = 0.95 s) stretched
into 224×224 squares by RandomResizedCrop.

The geometry of evaluation is the point of this adapter (docs/methods.md §2.6,
pitfalls 4 and 5): a clip's log-mel is cut into consecutive windows of
``window_frames`` valid frames, and each window is either *resized* to the
trained 224×224 square (``resize``, the default) or zero-padded to a multiple
of the patch size and encoded on its own non-square patch grid with
interpolated positional embeddings (``pad``, the MSN-audio evaluation).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any, Literal

from evalbench.adapters.options import LogMelFrontEndOptions, check_norm_and_seed
from evalbench.specs.fields import to_dict
from evalbench.utils.hashing import sha256_file

# torchvision ViT sizes (Dosovitskiy et al., ICLR 2021, Table 1): patch, layers, heads, width, MLP width.
ARCHS: dict[str, tuple[int, int, int, int, int]] = {
    "vit_b_32": (32, 12, 12, 768, 3072),
    "vit_b_16": (16, 12, 12, 768, 3072),
    "vit_l_32": (32, 24, 16, 1024, 4096),
    "vit_l_16": (16, 24, 16, 1024, 4096),
}
TRAINING_WINDOW_FRAMES = 96  # 0.95 s = 15,200 samples at 16 kHz -> 96 frames (docs/methods.md §1.1)


@dataclass(frozen=True)
class MSNOptions:
    """Options of the MSN adapter.

    Attributes:
        arch: torchvision ViT size; ``vit_b_32`` is the MSN-audio backbone.
        patch_size: Override of the arch's patch size (null: the arch's).
        num_layers: Override of the number of transformer blocks.
        num_heads: Override of the number of attention heads.
        hidden_dim: Override of the token width (the embedding dimension).
        mlp_dim: Override of the MLP width.  The overrides exist for small test
            networks built through the same code path; a checkpoint must match.
        image_size: Side of the square training image (224); the positional
            embeddings form an ``image_size/patch_size`` square grid.
        stem: ``1to3``: a 1×1 Conv2d(1→3) before the RGB patch embedding
            (MSN-audio); ``1ch``: a single-channel patch embedding Conv2d(1→D).
        imagenet_weights: Path (absolute, or relative to the working
            directory) of a torchvision ImageNet ViT state-dict file on disk,
            used as initialisation when no checkpoint is given (never
            downloaded); its SHA-256, not its path, enters the cache key.
            With ``1to3`` the RGB patch embedding is kept after the 1×1 conv;
            with ``1ch`` its RGB weights are summed.
        geometry: ``resize``: each window is resized (bilinear) to
            ``image_size``², the trained geometry; ``pad``: each window is
            zero-padded to patch multiples and encoded on its own patch grid.
        window_frames: Valid log-mel frames per window (96 = the 0.95 s
            training crop of BYOL-A and MSN-audio).
        min_tail_frames: A clip's last window is merged into the one before it
            when it holds fewer valid frames (0: never merge).  Default half a
            window: windows then hold 48–143 frames (clips shorter than 48
            frames give one shorter window), so a 1 s clip (97 frames) is one
            window, not a full window plus a 10 ms sliver that resizing would
            stretch 224-fold and the window mean would weigh like a full one.
        output: ``cls``: the [CLS] token per window (MSN's representation);
            ``mean_patches``: the mean of the window's non-padded patch tokens.
        frontend: Log-mel front end (BYOL-A defaults, docs/methods.md §1.1).
        norm_mean: Fixed log-mel mean; with ``norm_std`` nothing is fitted.
            Default (both null): fitted on the downstream training split.
        norm_std: Fixed log-mel standard deviation (positive).
        seed: Seed of the random initialisation (used without a checkpoint).
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
    geometry: Literal["resize", "pad"] = "resize"
    window_frames: int = TRAINING_WINDOW_FRAMES
    min_tail_frames: int = TRAINING_WINDOW_FRAMES // 2
    output: Literal["cls", "mean_patches"] = "cls"
    frontend: LogMelFrontEndOptions = field(default_factory=LogMelFrontEndOptions)
    norm_mean: float | None = None
    norm_std: float | None = None
    seed: int = 0

    def __post_init__(self) -> None:
        for key in ("patch_size", "num_layers", "num_heads", "hidden_dim", "mlp_dim"):
            value = getattr(self, key)
            if value is not None and value <= 0:
                raise ValueError(f"{key}: must be a positive integer or null (the arch's value), got {value}")
        patch, _, heads, width, _ = self.vit
        if width % heads:
            raise ValueError(f"hidden_dim: {width} is not divisible by num_heads {heads}")
        if self.image_size <= 0 or self.image_size % patch:
            raise ValueError(
                f"image_size: must be a positive multiple of the patch size {patch}, got {self.image_size}"
            )
        if self.window_frames <= 0:
            raise ValueError(f"window_frames: must be positive, got {self.window_frames}")
        if not 0 <= self.min_tail_frames <= self.window_frames:
            raise ValueError(
                f"min_tail_frames: must lie in 0..window_frames ({self.window_frames}), got {self.min_tail_frames}"
            )
        if self.imagenet_weights is not None and not self.imagenet_weights.strip():
            raise ValueError("imagenet_weights: empty path; give a torchvision ViT weights file or null")
        check_norm_and_seed(self.norm_mean, self.norm_std, self.seed)

    @property
    def vit(self) -> tuple[int, int, int, int, int]:
        """``(patch_size, num_layers, num_heads, hidden_dim, mlp_dim)`` after the overrides."""
        base = ARCHS[self.arch]
        over = (self.patch_size, self.num_layers, self.num_heads, self.hidden_dim, self.mlp_dim)
        return tuple(b if o is None else o for b, o in zip(base, over, strict=True))  # type: ignore[return-value]

    def identity(self) -> dict[str, Any]:
        """What of these options decides the embeddings, for cache keys and record staleness.

        The ImageNet initialisation file enters by content (SHA-256), so a file
        replaced at the same path invalidates cached embeddings (docs/protocol.md
        §4, flaw 5).  A missing file keeps its path (building the encoder then
        fails with a clear error, unless a checkpoint overrides it).
        """
        data = to_dict(self)
        if self.imagenet_weights is not None:
            path = Path(self.imagenet_weights).expanduser().resolve()
            if path.is_file():
                stat = path.stat()
                data["imagenet_weights"] = {"sha256": _file_digest(str(path), stat.st_mtime_ns, stat.st_size)}
        return data

    @property
    def fixed_norm(self) -> bool:
        """True when the log-mel statistics are given, so nothing is fitted."""
        return self.norm_mean is not None

    @property
    def hop_seconds(self) -> float:
        """Nominal window hop in seconds (``window_frames`` × the front-end hop)."""
        return self.window_frames * self.frontend.hop_length / self.frontend.sample_rate


@cache
def _file_digest(path: str, mtime_ns: int, size: int) -> str:
    """SHA-256 of a file, memoised while its modification time and size are unchanged."""
    return sha256_file(path)
