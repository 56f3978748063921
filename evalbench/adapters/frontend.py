"""Log-mel spectrogram front end shared by the log-mel, BYOL-A and MSN adapters.

Framing is centred, as in BYOL-A's and the reference harness's front ends
(torchaudio / nnAudio with ``center=True``): the signal is reflected by half a
window at both ends.  In a padded batch the reflection at the right end is
taken at each clip's *own* end (its valid length), not at the end of the
padding, so each clip's frames are exactly those of the clip framed alone and
every one of them, including the last frames that reach into the reflection
of the true end, is valid (:func:`~evalbench.adapters.base.valid_frames`).
"""

from __future__ import annotations

import torch
import torchaudio
from torch import nn

from evalbench.adapters.base import valid_frames
from evalbench.adapters.options import LogMelFrontEndOptions


def reflect_pad_each(waveforms: torch.Tensor, lengths: torch.Tensor | None, pad: int, min_len: int) -> torch.Tensor:
    """Centre-padding of each clip at its own ends, batched.

    Clip ``b`` (its first ``lengths[b]`` samples, zero-extended to ``min_len``
    if shorter, as a short clip alone would be) is reflected by ``pad`` samples
    at both ends, like ``torch.nn.functional.pad(..., mode="reflect")`` on the
    clip alone; everything after its right reflection is zero.

    Args:
        waveforms: ``(B, N)`` audio, anything beyond each clip's length.
        lengths: ``(B,)`` valid samples per clip (None: all ``N``).
        pad: Samples of reflection on each side (half the window); must be < ``min_len``.
        min_len: Clips shorter than this are zero-extended to it first.

    Returns:
        ``(B, max(N, min_len) + 2 * pad)``.
    """
    b, n = waveforms.shape
    if lengths is None:
        lengths = torch.full((b,), n, dtype=torch.int64, device=waveforms.device)
    lengths = lengths.to(waveforms.device).clamp(min=0, max=n)
    span = torch.clamp(lengths, min=min_len)[:, None]
    pos = torch.arange(-pad, max(n, min_len) + pad, device=waveforms.device)[None, :].expand(b, -1)
    src = torch.where(pos < 0, -pos, pos)
    src = torch.where(src >= span, 2 * (span - 1) - src, src)
    keep = (src >= 0) & (src < lengths[:, None]) & (pos < span + pad)
    return torch.gather(waveforms, 1, src.clamp(0, max(n - 1, 0))) * keep


class LogMelFrontEnd(nn.Module):
    """Waveform ``(B, N)`` → log-mel ``(B, n_mels, T)`` with centred frames, ``T = 1 + max(N, n_fft) // hop``.

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
            center=False,  # centring is done per clip by reflect_pad_each
            mel_scale=options.mel_scale,
            norm=options.norm,
        )

    def forward(self, waveforms: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        """Log-mel spectrogram ``(B, n_mels, T)``; with ``lengths``, each clip framed as if alone."""
        n_fft = self.options.n_fft
        padded = reflect_pad_each(waveforms, lengths, n_fft // 2, n_fft)
        return torch.log(self.melspec(padded) + self.options.eps)

    def frame_mask(self, lengths: torch.Tensor, n_frames: int) -> torch.Tensor:
        """Validity mask ``(B, T)`` of the frames for clips of ``lengths`` samples."""
        return valid_frames(lengths, n_frames, self.options.hop_length, self.options.n_fft)
