"""BYOL-A encoder networks: AudioNTT2020 (v1) and AudioNTT2022 (v2).

Both are small fully convolutional (in time) CNNs over a normalised log-mel
spectrogram ``(B, 1, 64, T)`` followed by a per-frame MLP (docs/methods.md §1.4):

- **v1** ``AudioNTT2020`` (Niizumi et al., "BYOL for Audio: Self-Supervised
  Learning for General-Purpose Audio Representation", IJCNN 2021): three blocks
  Conv3×3 → BatchNorm → ReLU → MaxPool2 (64 channels), so time and frequency
  shrink 8×; each output frame is the flattened ``(F' = 8, C = 64)`` map, index
  ``f·64 + c`` (512 values), mapped by Linear(512→d) → ReLU → Dropout(0.3) →
  Linear(d→d) → ReLU, with d ∈ {512, 1024, 2048}.
- **v2** ``AudioNTT2022`` (Niizumi et al., "BYOL for Audio: Exploring
  Pre-trained General-purpose Audio Representations", IEEE/ACM TASLP 2023): only
  two conv blocks (time and frequency shrink 4×; frames of ``16·64 = 1024``
  values), MLP 1024→2048→2048, and the conv features (1024) concatenated with
  the MLP output (2048) per frame: 3072 values.  The TASLP ablations found the
  third block hurts tasks that need frequency resolution and the local + global
  concatenation best.

Module attribute names reproduce the official state-dict layout exactly, so the
released weight files load without renaming: ``features.{0,1,4,5,8,9}.*`` (v1) or
``features.{0,1,4,5}.*`` (v2) for the conv/BN layers, and ``fc.{0,3}.*`` for the two
Linear layers (indices 1, 2, 4 are ReLU, Dropout, ReLU).  Parameter counts are
600,192 / 1,649,792 / 5,321,856 (v1, d = 512 / 1024 / 2048) and 6,333,376 (v2).

Pooling is *not* part of these modules: they return frames ``(B, T', D)`` and the
adapter pools them with the masked ``mean_max`` step (BYOL-A's time mean + time
max, summed).  NOTE: initialisation is PyTorch's default for every layer; the
random twin (``encoders/byola-random.yaml``) therefore is a default-initialised
network in eval mode (BatchNorm with running mean 0 and variance 1).
"""

from __future__ import annotations

import torch
from torch import nn

CHANNELS = 64  # conv width of every block (Niizumi et al., IJCNN 2021, Fig. 2)
N_MELS = 64  # the networks are defined for 64 mel bands (docs/methods.md §1.1)
DROPOUT = 0.3  # MLP dropout (IJCNN 2021); inactive at evaluation


def _conv_blocks(n_blocks: int) -> nn.Sequential:
    """``n_blocks`` × [Conv3×3 → BN → ReLU → MaxPool2]; conv layers at indices 0, 4, 8, BN at 1, 5, 9."""
    layers: list[nn.Module] = []
    in_ch = 1
    for _ in range(n_blocks):
        layers += [
            nn.Conv2d(in_ch, CHANNELS, kernel_size=3, stride=1, padding=1),
            nn.BatchNorm2d(CHANNELS),
            nn.ReLU(),
            nn.MaxPool2d(kernel_size=2, stride=2),
        ]
        in_ch = CHANNELS
    return nn.Sequential(*layers)


def _mlp(in_features: int, width: int) -> nn.Sequential:
    """Linear → ReLU → Dropout → Linear → ReLU; Linear layers at indices 0 and 3."""
    return nn.Sequential(
        nn.Linear(in_features, width),
        nn.ReLU(),
        nn.Dropout(p=DROPOUT),
        nn.Linear(width, width),
        nn.ReLU(),
    )


def _to_frames(x: torch.Tensor) -> torch.Tensor:
    """``(B, C, F', T')`` conv maps → ``(B, T', F'·C)`` frames, feature index ``f·C + c``.

    The order matters: the first Linear layer's weights were trained on it.
    """
    b, c, f, t = x.shape
    return x.permute(0, 3, 2, 1).reshape(b, t, f * c)


class _AudioNTT(nn.Module):
    """Shared body: conv blocks, then a per-frame MLP.

    Args:
        n_blocks: Number of conv blocks (3 for v1, 2 for v2).
        width: MLP width.
    """

    def __init__(self, n_blocks: int, width: int) -> None:
        super().__init__()
        self.n_blocks = n_blocks
        self.features = _conv_blocks(n_blocks)
        self.fc = _mlp(CHANNELS * (N_MELS >> n_blocks), width)

    @property
    def downsample(self) -> int:
        """Factor by which time (and frequency) shrink: ``2 ** n_blocks``."""
        return 2**self.n_blocks

    def valid_output_frames(self, n_valid: torch.Tensor) -> torch.Tensor:
        """Output frames of a clip of ``n_valid`` input frames encoded alone: ``n // 2**n_blocks``.

        Each block's stride-2 max pool floors the length.  :meth:`conv_maps`
        with ``n_valid`` reproduces, in a padded batch, exactly the maps of each
        clip encoded alone, so these frames are all valid.

        Args:
            n_valid: Valid input (log-mel) frame counts, any integer tensor.

        Returns:
            Valid output frame counts (0 for clips under ``downsample`` frames).
        """
        return torch.div(n_valid, self.downsample, rounding_mode="floor")

    def conv_maps(self, x: torch.Tensor, n_valid: torch.Tensor | None = None) -> torch.Tensor:
        """Conv feature maps ``(B, C, F', T')`` of ``x`` ``(B, 1, F, T)``.

        With ``n_valid`` (valid input frames per clip), time steps at and past a
        clip's own length are zeroed before every convolution and the length
        halves at every pool: a 3×3 convolution then sees at each clip's end the
        same zeros its own zero padding gives the clip encoded alone, so the
        first ``valid_output_frames(n_valid)`` output frames equal the clip's
        frames computed alone, whatever follows it in the batch.
        """
        if n_valid is None:
            return self.features(x)
        n = n_valid.to(x.device)
        steps = torch.arange(x.shape[-1], device=x.device)
        for layer in self.features:
            if isinstance(layer, nn.Conv2d):
                x = x * (steps[: x.shape[-1]][None, :] < n[:, None]).to(x.dtype)[:, None, None, :]
            x = layer(x)
            if isinstance(layer, nn.MaxPool2d):
                n = torch.div(n, 2, rounding_mode="floor")
        return x


class AudioNTT2020(_AudioNTT):
    """BYOL-A v1 encoder (IJCNN 2021): three conv blocks and an MLP of width ``d``.

    Args:
        d: Output dimension (the released weights use 512, 1024 or 2048).
    """

    def __init__(self, d: int = 2048) -> None:
        super().__init__(n_blocks=3, width=d)
        self.embed_dim = d

    def forward(self, x: torch.Tensor, n_valid: torch.Tensor | None = None) -> torch.Tensor:
        """Frames ``(B, T/8, d)`` of a normalised log-mel batch ``(B, 1, 64, T)`` (``n_valid``: :meth:`conv_maps`)."""
        return self.fc(_to_frames(self.conv_maps(x, n_valid)))


class AudioNTT2022(_AudioNTT):
    """BYOL-A v2 encoder (TASLP 2023): two conv blocks, MLP 1024→2048→2048, conv skip.

    Args:
        width: MLP width (2048 in the released ``…64x96d2048.pth``; output is ``1024 + width``).
    """

    def __init__(self, width: int = 2048) -> None:
        super().__init__(n_blocks=2, width=width)
        self.embed_dim = self.fc[0].in_features + width

    def forward(self, x: torch.Tensor, n_valid: torch.Tensor | None = None) -> torch.Tensor:
        """Frames ``(B, T/4, 1024 + width)``: conv features, then the MLP's output, per frame.

        ``n_valid``: see :meth:`conv_maps`.
        """
        local = _to_frames(self.conv_maps(x, n_valid))
        return torch.cat([local, self.fc(local)], dim=-1)


def build_network(version: str, feature_d: int) -> _AudioNTT:
    """The BYOL-A network for ``version`` (``v1``/``v2``) and output dimension ``feature_d``.

    Args:
        version: ``v1`` (AudioNTT2020) or ``v2`` (AudioNTT2022).
        feature_d: Output frame dimension: d for v1; 1024 + MLP width (3072) for v2.

    Returns:
        The network, in training mode as constructed (callers switch to eval).
    """
    if version == "v1":
        return AudioNTT2020(feature_d)
    return AudioNTT2022(feature_d - CHANNELS * (N_MELS >> 2))


__all__ = ["AudioNTT2020", "AudioNTT2022", "build_network"]
