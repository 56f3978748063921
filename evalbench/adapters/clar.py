"""The ``clar`` adapter: CLAR's ResNet-18 encoders, 2-D (spectrogram) or 1-D (raw waveform).

Al-Tahan & Mohsenzadeh, "CLAR: Contrastive Learning of Auditory
Representations", AISTATS 2021 (docs/methods.md §3) train a ResNet-18 (He et al.,
CVPR 2016) with SimCLR's NT-Xent loss plus a simultaneous supervised term, at
16 kHz, and evaluate the 512-d average-pooled output with a linear classifier.

- ``resnet2d``: torchvision's ResNet-18 (random init, no ImageNet weights) on
  the 3-channel ``[log-magnitude STFT, phase, log-mel]`` image of
  :mod:`evalbench.adapters.clar_frontend` (``[B, 3, 128, T]``, frequency as
  height).  Frames are the last feature map averaged over frequency,
  ``(B, T', 512)`` with one frame per 32 spectrogram frames (256 ms), so mean
  pooling over frames is exactly ResNet's adaptive average pool.
- ``resnet1d``: the 1-D ResNet-18 of :mod:`evalbench.adapters.resnet1d` on the
  raw waveform, one 512-d frame per 2 ms.

Batch invariance: a ResNet's receptive field spans seconds, so masking edge
frames cannot make a clip's output independent of the zero padding that a
batch adds after it.  Instead, :func:`encode_per_length` trims every clip to
its valid length and runs the network once per distinct length (clips of equal
length share a sub-batch).  In the pipeline almost every clip of a task has the
task's unit length, so this costs nothing there; every exposed frame is
computed from the clip's own audio only.
"""

from __future__ import annotations

import torch
from torch import nn
from torchvision.models.resnet import BasicBlock, ResNet

from evalbench.adapters.base import Frames, FrozenEncoder, encode_per_length, seeded
from evalbench.adapters.clar_frontend import HOP, ClarFrontEnd
from evalbench.adapters.options.clar import EMBED_DIM, SAMPLE_RATE, ClarOptions
from evalbench.adapters.resnet1d import ResNet1d18

FAMILY = "clar"
DOWNSAMPLE = 32  # total stride of ResNet-18 (stem 2 × max-pool 2 × stages 1·2·2·2)


class ResNet2d18(ResNet):
    """torchvision's ResNet-18 (He et al. 2016) without ``avgpool``/``fc``, returning frames.

    Parameter names are torchvision's (``conv1``, ``bn1``, ``layer1.0.conv1``…)
    minus ``fc.*``; weights are randomly initialised (no ImageNet download).
    """

    def __init__(self) -> None:
        super().__init__(BasicBlock, [2, 2, 2, 2])
        del self.fc, self.avgpool

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        """Image ``(B, 3, F, T)`` → frames ``(B, T', 512)`` (last feature map averaged over frequency)."""
        x = self.maxpool(self.relu(self.bn1(self.conv1(image))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return x.mean(dim=2).transpose(1, 2)


def build_network(encoder: str) -> nn.Module:
    """The CLAR encoder network whose ``state_dict`` the adapter reads (``resnet2d`` or ``resnet1d``)."""
    return ResNet2d18() if encoder == "resnet2d" else ResNet1d18()


class ClarEncoder(FrozenEncoder):
    """CLAR ResNet-18 frames (``embed_dim = 512``) at 16 kHz.

    Args:
        options: Adapter options (front end, encoder, seed of the random twin).
    """

    VERSION = 2  # 2: the code front end's dB conversions match the official code (amin 1e-5, −20/−10 dB offsets)
    FAMILY = FAMILY

    def __init__(self, options: ClarOptions) -> None:
        super().__init__()
        self.options = options
        self.sample_rate = SAMPLE_RATE
        self.embed_dim = EMBED_DIM
        self.frontend: ClarFrontEnd | None = None
        if options.encoder == "resnet2d":
            self.frontend = ClarFrontEnd(options.frontend)
            self.min_samples = self.frontend.min_samples
            self.hop_seconds = HOP * DOWNSAMPLE / SAMPLE_RATE  # 0.256 s
        else:
            self.min_samples = ResNet1d18.min_samples
            self.hop_seconds = DOWNSAMPLE / SAMPLE_RATE  # 2 ms
        with seeded(options.seed):
            self.net = build_network(options.encoder)
        self.eval()

    def _frames(self, waveforms: torch.Tensor) -> torch.Tensor:
        if self.frontend is not None:
            return self.net(self.frontend(waveforms))
        return self.net(waveforms)

    def encode(self, waveforms: torch.Tensor, lengths: torch.Tensor) -> Frames:
        """ResNet frames ``(B, T', 512)`` of each clip's own samples and their mask (see module docstring)."""
        return encode_per_length(waveforms, lengths, self._frames, self.min_samples)
