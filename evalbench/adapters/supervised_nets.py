"""The five supervised ESC-50 baseline networks of docs/methods.md §5.2.

Each network is a whole classifier (so that a trained model's state dict loads
as is, and ``evalbench pretrain supervised`` can train it) and exposes the
penultimate representation that evalbench evaluates:

(a) :class:`CnnBaseline`: three Conv2d(5×20) + ReLU, MaxPool 4, two dense
    layers; the 326-d second dense layer.  Its 20,904-wide flatten fixes the
    input at ``[1, 64, 862]`` (5 s at 44.1 kHz, hop 256).
(b) :class:`VggStyle`: evalbench's stand-in for the report's illegible VGG-style
    CNN: 4 blocks of [Conv3×3-BN-ReLU ×2 → MaxPool 2] at 16/32/64/128
    channels, global average pooling (128-d), Dropout 0.3, Linear.
(c) :class:`LstmNet`: one-layer LSTM (64 → 64) over log-mel frames; the
    hidden state at the last *valid* step.
(d) :class:`CrnnNet`: Conv2d(1→8, 5×20, stride 2×8) without activation,
    channels × frequency merged per time step (240), a 2-layer GRU (64,
    dropout 0.1) and attention pooling (Linear-tanh-Linear, softmax over
    time with padded steps masked out); the 64-d pooled vector.
(f) :class:`KumarNet`: the deep CNN of Kumar, Khadkevich & Fügen, ICASSP
    2018, on a ``[1, T, 128]`` (time × mel) dB spectrogram: five blocks of
    two Conv3×3-BN-ReLU + MaxPool 2, Conv3×3(256→512)-BN-ReLU + MaxPool 2,
    Conv2×2(512→1024)-BN-ReLU ("layer 18", the 1024-d feature) and a
    1×1 Conv(1024→527) + sigmoid ("layer 19").  Module names are the official
    ones (``layer1`` … ``layer19``), so the published AudioSet weights
    (anuragkr90/weak_feature_extractor) load unchanged.
"""

from __future__ import annotations

import torch
from torch import nn

N_MELS = 64  # report front end (docs/methods.md §5.1)
CNN_FRAMES = 862  # 1 + 220,500 // 256: the CNN baseline's fixed input length
CRNN_KERNEL, CRNN_STRIDE = (5, 20), (2, 8)


def he_init(module: nn.Module) -> None:
    """He-normal conv weights and zero conv biases (He et al., ICCV 2015) for the deep ReLU CNNs.

    NOTE: PyTorch's default init shrinks the signal ~2.4× per conv + ReLU layer;
    through the 8 to 13 layers of ``vgg`` and ``kumar`` an *untrained* network
    (the random twin, whose BatchNorm statistics are the identity) then maps every
    clip to nearly the same vector.  Trained weights replace this init anyway.
    """
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)


def masked_mean(x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """Mean of ``x`` ``(B, T, D)`` over the valid steps of ``mask`` ``(B, T)`` (all steps when None)."""
    if mask is None:
        return x.mean(dim=1)
    m = mask.unsqueeze(-1).to(x.dtype)
    return (x * m).sum(1) / m.sum(1).clamp(min=1.0)


class CnnBaseline(nn.Module):
    """(a) The report's CNN baseline on ``[B, 1, 64, 862]`` log-mel input.

    Args:
        n_classes: Classifier width (50 for ESC-50).
    """

    def __init__(self, n_classes: int = 50) -> None:
        super().__init__()
        self.conv = nn.Sequential(
            nn.Conv2d(1, 8, CRNN_KERNEL),
            nn.ReLU(),
            nn.Conv2d(8, 8, CRNN_KERNEL),
            nn.ReLU(),
            nn.Conv2d(8, 8, CRNN_KERNEL),
            nn.ReLU(),
            nn.MaxPool2d(4),
        )  # [8, 52, 805] → [8, 13, 201]
        self.fc = nn.Sequential(nn.Linear(8 * 13 * 201, 5226), nn.ReLU(), nn.Linear(5226, 326), nn.ReLU())
        self.head = nn.Linear(326, n_classes)

    def embed(self, spec: torch.Tensor) -> torch.Tensor:
        """The 326-d penultimate layer of ``[B, 1, 64, 862]`` inputs."""
        return self.fc(self.conv(spec).flatten(1))

    def forward(self, spec: torch.Tensor) -> torch.Tensor:
        """Class logits."""
        return self.head(self.embed(spec))


class VggStyle(nn.Module):
    """(b) evalbench's VGG-style stand-in (docs/methods.md §5.2 b) on ``[B, 1, 64, T]``, ``T >= 16``.

    Args:
        n_classes: Classifier width.
    """

    min_frames = 16  # four 2× poolings

    def __init__(self, n_classes: int = 50) -> None:
        super().__init__()
        blocks, in_channels = [], 1
        for channels in (16, 32, 64, 128):
            for c_in in (in_channels, channels):
                blocks += [nn.Conv2d(c_in, channels, 3, padding=1, bias=False), nn.BatchNorm2d(channels), nn.ReLU()]
            blocks.append(nn.MaxPool2d(2))
            in_channels = channels
        self.features = nn.Sequential(*blocks)
        self.dropout = nn.Dropout(0.3)
        self.head = nn.Linear(128, n_classes)
        he_init(self)

    def frames(self, spec: torch.Tensor) -> torch.Tensor:
        """Last feature map averaged over frequency: ``(B, T // 16, 128)``."""
        return self.features(spec).mean(dim=2).transpose(1, 2)

    def forward(self, spec: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """Class logits after global average pooling over the valid output frames ``mask`` ``(B, T // 16)``."""
        return self.head(self.dropout(masked_mean(self.frames(spec), mask)))


class LstmNet(nn.Module):
    """(c) One-layer LSTM (64 → 64, batch-first) over the time axis of ``[B, 1, 64, T]``.

    Args:
        n_classes: Classifier width.
    """

    def __init__(self, n_classes: int = 50) -> None:
        super().__init__()
        self.lstm = nn.LSTM(N_MELS, 64, num_layers=1, batch_first=True)
        self.head = nn.Linear(64, n_classes)

    def sequence(self, spec: torch.Tensor) -> torch.Tensor:
        """Hidden states ``(B, T, 64)``; causal, so step t never depends on later (padded) steps."""
        return self.lstm(spec[:, 0].transpose(1, 2))[0]

    def embed(self, spec: torch.Tensor, n_frames: torch.Tensor) -> torch.Tensor:
        """Hidden state at step ``n_frames - 1`` (the last valid log-mel frame, *not* a sample count)."""
        h = self.sequence(spec)
        last = (n_frames.to(h.device).long() - 1).clamp(0, h.shape[1] - 1)
        return h[torch.arange(h.shape[0], device=h.device), last]

    def forward(self, spec: torch.Tensor, n_frames: torch.Tensor) -> torch.Tensor:
        """Class logits from the last valid hidden state."""
        return self.head(self.embed(spec, n_frames))


class CrnnNet(nn.Module):
    """(d) CRNN with attention pooling ("CRNN-A") on ``[B, 1, 64, T]``, ``T >= 20``.

    Args:
        n_classes: Classifier width.
    """

    min_frames = CRNN_KERNEL[1]

    def __init__(self, n_classes: int = 50) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 8, CRNN_KERNEL, stride=CRNN_STRIDE)  # no activation, as in the report
        n_freq = (N_MELS - CRNN_KERNEL[0]) // CRNN_STRIDE[0] + 1  # 30
        self.gru = nn.GRU(8 * n_freq, 64, num_layers=2, dropout=0.1, batch_first=True)
        self.attention = nn.Sequential(nn.Linear(64, 64), nn.Tanh(), nn.Linear(64, 1))
        self.head = nn.Linear(64, n_classes)

    @staticmethod
    def conv_frames(n_frames: torch.Tensor) -> torch.Tensor:
        """GRU steps computed from ``n_frames`` log-mel frames (valid convolution, stride 8)."""
        return torch.div(n_frames - CRNN_KERNEL[1], CRNN_STRIDE[1], rounding_mode="floor") + 1

    def sequence(self, spec: torch.Tensor) -> torch.Tensor:
        """GRU outputs ``(B, T', 64)``; the conv output is merged as channel·30 + frequency per step."""
        x = self.conv(spec)  # (B, 8, 30, T')
        x = x.permute(0, 3, 1, 2).flatten(2)  # (B, T', 240)
        return self.gru(x)[0]

    def attention_weights(self, g: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """Softmax attention ``(B, T')`` over GRU outputs; masked (padded) steps get weight 0."""
        scores = self.attention(g).squeeze(-1)
        if mask is not None:
            scores = scores.masked_fill(~mask, float("-inf"))
        return torch.softmax(scores, dim=1)

    def embed(self, spec: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """The 64-d attention-pooled vector (``mask`` marks valid GRU steps)."""
        g = self.sequence(spec)
        return (self.attention_weights(g, mask).unsqueeze(-1) * g).sum(1)

    def forward(self, spec: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """Class logits."""
        return self.head(self.embed(spec, mask))


def _conv_bn_relu(c_in: int, c_out: int, kernel: int = 3, padding: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(c_in, c_out, kernel, padding=padding), nn.BatchNorm2d(c_out), nn.ReLU())


class KumarNet(nn.Module):
    """(f) Kumar et al. (ICASSP 2018) weak-label CNN on ``[B, 1, T, 128]`` (time × mel), ``T >= 128``.

    Layers 3, 6, 9, 12, 15 and 17 are 2× max-pools (no weights); every other
    ``layerN`` is ``Sequential(Conv2d, BatchNorm2d, ReLU)`` except ``layer19``,
    ``Sequential(Conv2d 1×1, Sigmoid)``.

    Args:
        n_classes: Width of layer 19 (527 AudioSet classes).
    """

    def __init__(self, n_classes: int = 527) -> None:
        super().__init__()
        channels = [(1, 16), (16, 16), None, (16, 32), (32, 32), None, (32, 64), (64, 64), None]
        channels += [(64, 128), (128, 128), None, (128, 256), (256, 256), None, (256, 512), None]
        for i, pair in enumerate(channels, start=1):
            self.add_module(f"layer{i}", nn.MaxPool2d(2) if pair is None else _conv_bn_relu(*pair))
        self.layer18 = _conv_bn_relu(512, 1024, kernel=2, padding=0)
        self.layer19 = nn.Sequential(nn.Conv2d(1024, n_classes, 1), nn.Sigmoid())
        he_init(self)

    def layer18_features(self, spec: torch.Tensor) -> torch.Tensor:
        """The "layer 18" map ``(B, 1024, T', F')``; 5 s (431 frames) gives ``T' = 5``, ``F' = 1``."""
        x = spec
        for i in range(1, 19):
            x = getattr(self, f"layer{i}")(x)
        return x

    def embed(self, spec: torch.Tensor) -> torch.Tensor:
        """The 1024-d feature: layer 18 averaged over time and frequency."""
        return self.layer18_features(spec).mean(dim=(2, 3))

    def forward(self, spec: torch.Tensor) -> torch.Tensor:
        """AudioSet class probabilities: layer 19 averaged over time and frequency."""
        return self.layer19(self.layer18_features(spec)).mean(dim=(2, 3))

    def logits(self, spec: torch.Tensor) -> torch.Tensor:
        """Class logits for cross-entropy training: layer 19's 1×1 convolution, before its sigmoid.

        Averaged over time and frequency (the convolution is linear, so this is the logit of the mean map).
        ``forward`` returns time-averaged sigmoid probabilities (Kumar et al.'s weak-label output);
        cross-entropy on those would train on squashed scores.
        """
        return self.layer19[0](self.layer18_features(spec)).mean(dim=(2, 3))


ARCHITECTURES: dict[str, type[nn.Module]] = {
    "cnn": CnnBaseline,
    "vgg": VggStyle,
    "lstm": LstmNet,
    "crnn": CrnnNet,
    "kumar": KumarNet,
}


def build_network(arch: str, n_classes: int) -> nn.Module:
    """The classifier network of ``arch`` (``cnn``, ``vgg``, ``lstm``, ``crnn`` or ``kumar``)."""
    return ARCHITECTURES[arch](n_classes)
