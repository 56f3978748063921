"""Log-mel spectrogram front end shared by the log-mel, BYOL-A and MSN adapters."""

from __future__ import annotations

import torch
import torchaudio
from torch import nn

from evalbench.adapters.base import valid_frames
from evalbench.adapters.options import LogMelFrontEndOptions


class LogMelFrontEnd(nn.Module):
    """Waveform ``(B, N)`` → log-mel ``(B, n_mels, T)`` with centred frames.

    Defaults follow BYOL-A (see :class:`LogMelFrontEndOptions`): Slaney mel
    scale and norm, power spectrogram, ``log(mel + eps)``.

    Args:
        options: Front-end options.
    """

    def __init__(self, options: LogMelFrontEndOptions) -> None:
        super().__init__()
        self.options = options
        self.melspec = torchaudio.transforms.MelSpectrogram(
            sample_rate=options.sample_rate,
            n_fft=options.n_fft,
            win_length=options.win_length,
            hop_length=options.hop_length,
            f_min=options.f_min,
            f_max=options.f_max,
            n_mels=options.n_mels,
            power=2.0,
            center=True,
            mel_scale=options.mel_scale,
            norm=options.norm,
        )

    def forward(self, waveforms: torch.Tensor) -> torch.Tensor:
        """Log-mel spectrogram ``(B, n_mels, T)``."""
        return torch.log(self.melspec(waveforms) + self.options.eps)

    def frame_mask(self, lengths: torch.Tensor, n_frames: int) -> torch.Tensor:
        """Validity mask ``(B, T)`` of the frames for clips of ``lengths`` samples."""
        return valid_frames(lengths, n_frames, self.options.hop_length, self.options.n_fft)
