"""A 1-D ResNet-18 for raw waveforms, as used by CLAR's 1-D encoder.

He et al., "Deep Residual Learning for Image Recognition", CVPR 2016, define
ResNet-18 as a strided stem, a max-pool and four stages of two BasicBlocks
(two 3×3 convolutions with an identity or 1×1-projection shortcut) at 64, 128,
256 and 512 channels with strides 1, 2, 2, 2.  Al-Tahan & Mohsenzadeh
(AISTATS 2021, docs/methods.md §3.2) transpose it to raw 16 kHz audio ``[B, 1, N]``:

- stem: Conv1d(1→64, k7, s2, p3) → BN → ReLU → MaxPool1d(k9, s2, p1);
- BasicBlocks with **kernel 9 (padding 4)** instead of 3×3;
- the 512-channel output is average-pooled over time into a 512-d vector.

Here the network stops before the pooling and returns the 512-channel frame
sequence (one frame per 32 input samples, 2 ms at 16 kHz), so that masked
mean pooling downstream equals the adaptive average pool.  Parameter names
follow torchvision's ResNet (``conv1``, ``bn1``, ``layer1.0.conv1``,
``layer2.0.downsample.0``…); weights are initialised as torchvision does
(Kaiming-normal, fan-out, for convolutions; BN weight 1, bias 0).
"""

from __future__ import annotations

import torch
from torch import nn

KERNEL = 9  # CLAR's 1-D BasicBlock kernel (docs/methods.md §3.2)
CHANNELS = (64, 128, 256, 512)
STRIDES = (1, 2, 2, 2)
BLOCKS = (2, 2, 2, 2)  # ResNet-18


class BasicBlock1d(nn.Module):
    """Two kernel-9 convolutions with a residual shortcut (He et al. 2016, BasicBlock).

    Args:
        in_channels: Input channels.
        out_channels: Output channels.
        stride: Stride of the first convolution (and of the projection shortcut).
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1) -> None:
        super().__init__()
        pad = KERNEL // 2
        self.conv1 = nn.Conv1d(in_channels, out_channels, KERNEL, stride=stride, padding=pad, bias=False)
        self.bn1 = nn.BatchNorm1d(out_channels)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv1d(out_channels, out_channels, KERNEL, padding=pad, bias=False)
        self.bn2 = nn.BatchNorm1d(out_channels)
        self.downsample: nn.Module | None = None
        if stride != 1 or in_channels != out_channels:
            self.downsample = nn.Sequential(
                nn.Conv1d(in_channels, out_channels, 1, stride=stride, bias=False), nn.BatchNorm1d(out_channels)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, C_in, T)`` → ``(B, C_out, ⌈T / stride⌉)``."""
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + identity)


class ResNet1d18(nn.Module):
    """CLAR's 1-D ResNet-18 trunk: waveform ``(B, N)`` → frames ``(B, T', 512)``, ``T' ≈ N / 32``."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv1d(1, CHANNELS[0], 7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm1d(CHANNELS[0])
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool1d(KERNEL, stride=2, padding=1)
        in_channels = CHANNELS[0]
        for i, (channels, stride, blocks) in enumerate(zip(CHANNELS, STRIDES, BLOCKS, strict=True)):
            layer = [BasicBlock1d(in_channels, channels, stride)]
            layer += [BasicBlock1d(channels, channels) for _ in range(blocks - 1)]
            self.add_module(f"layer{i + 1}", nn.Sequential(*layer))
            in_channels = channels
        for m in self.modules():
            if isinstance(m, nn.Conv1d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm1d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    # The max-pool (k9, p1) needs at least 7 stem outputs, i.e. 13 samples; keep a comfortable margin.
    min_samples = 256

    def forward(self, waveforms: torch.Tensor) -> torch.Tensor:
        """Frame sequence ``(B, T', 512)`` of waveforms ``(B, N)``, ``N >= min_samples``."""
        x = self.maxpool(self.relu(self.bn1(self.conv1(waveforms[:, None]))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return x.transpose(1, 2)
