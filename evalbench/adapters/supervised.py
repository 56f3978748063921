"""The ``supervised`` adapter: penultimate layers of the supervised ESC-50 baselines.

docs/methods.md §5 (V. Dimitrov's 2022 course report, plus Kumar, Khadkevich &
Fügen, ICASSP 2018) trains five classifiers from scratch on 44.1 kHz audio;
:mod:`evalbench.adapters.supervised_nets` defines them.  Front ends:

- report networks (``cnn``, ``vgg``, ``lstm``, ``crnn``): mel spectrogram with
  n_fft 1024, window 1024, hop 256 (centred, Hann), 64 bands on torchaudio's
  default filterbank (HTK scale, no norm, 0–22,050 Hz), ``log(mel + 1e-6)``.
  NOTE: the report's log compression and mel scale are illegible; this is
  evalbench's documented choice (docs/methods.md §5.1).
- ``kumar``: n_fft 1024, hop 512, 128 bands, power to dB as librosa's defaults
  (Slaney scale and norm, ``10·log10(max(P, 1e-10))`` floored 80 dB below the
  clip's maximum), laid out time × mel and zero-padded to at least 128 frames.

Frames and pooling (the YAMLs use ``mean``, which then equals each network's
penultimate representation):

- ``cnn``: its 20,904-wide flatten needs exactly 862 frames (5 s), so clips
  are cut into consecutive 5 s windows, the last one zero-padded; one 326-d
  frame per window (a 1 s clip gives one padded window; mean pooling averages
  the windows of longer clips).
- ``vgg``: the last feature map averaged over frequency, one 128-d frame per
  16 log-mel frames; their mean is the global average pool.
- ``lstm`` / ``crnn``: these networks summarise the clip themselves, so they
  give a single frame per clip: the LSTM's hidden state at the last valid step
  (sample lengths converted to frame counts with :func:`frames_from_samples`)
  and the CRNN's attention-pooled vector; pooling that one frame returns it.
- ``kumar``: "layer 18" averaged over frequency, one 1024-d frame per 64
  input frames (≈ 0.74 s); the mean is Kumar's global average.

All but ``cnn`` run on each clip's own samples, one sub-batch per distinct
length (:func:`evalbench.adapters.base.encode_per_length`), so a clip's output
never depends on its batch.  Clips too short for a network (fewer than 16, 20
log-mel frames for ``vgg``/``crnn``; under one FFT window otherwise) are
zero-padded on the right to the minimum.
"""

from __future__ import annotations

import torch
import torchaudio
from torch import nn

from evalbench.adapters.base import Frames, FrozenEncoder, encode_per_length, seeded
from evalbench.adapters.options.supervised import EMBED_DIMS, SAMPLE_RATE, SupervisedOptions
from evalbench.adapters.supervised_nets import CrnnNet, VggStyle, build_network

FAMILY = "supervised"
N_FFT = 1024
HOP = 256  # report front end
KUMAR_HOP, KUMAR_MELS, KUMAR_MIN_FRAMES, KUMAR_TOP_DB = 512, 128, 128, 80.0
WINDOW_SAMPLES = 5 * SAMPLE_RATE  # the CNN baseline's 5 s window (220,500 samples → 862 frames)


def frames_from_samples(lengths: torch.Tensor, hop: int = HOP) -> torch.Tensor:
    """Centred STFT frames of clips of ``lengths`` samples: ``⌊len / hop⌋ + 1``.

    docs/methods.md §5.2 (c) pitfall: the collator's lengths are in samples; index the
    LSTM output with this frame count, never with the sample count.
    """
    return torch.div(lengths, hop, rounding_mode="floor") + 1


class ReportFrontEnd(nn.Module):
    """Waveform ``(B, N)`` → ``log(mel + 1e-6)`` ``(B, 1, 64, 1 + N // 256)`` (docs/methods.md §5.1)."""

    def __init__(self) -> None:
        super().__init__()
        self.melspec = torchaudio.transforms.MelSpectrogram(
            sample_rate=SAMPLE_RATE, n_fft=N_FFT, win_length=N_FFT, hop_length=HOP, n_mels=64, power=2.0, center=True
        )

    def forward(self, waveforms: torch.Tensor) -> torch.Tensor:
        """Log-mel input of the report's networks."""
        return torch.log(self.melspec(waveforms) + 1e-6)[:, None]


class KumarFrontEnd(nn.Module):
    """Waveform ``(B, N)`` → dB mel ``(B, 1, max(128, 1 + N // 512), 128)`` (Kumar et al. 2018)."""

    def __init__(self) -> None:
        super().__init__()
        self.melspec = torchaudio.transforms.MelSpectrogram(
            sample_rate=SAMPLE_RATE,
            n_fft=N_FFT,
            hop_length=KUMAR_HOP,
            n_mels=KUMAR_MELS,
            power=2.0,
            center=True,
            mel_scale="slaney",
            norm="slaney",
        )

    def forward(self, waveforms: torch.Tensor) -> torch.Tensor:
        """Per-clip power-to-dB (top 80 dB), time × mel, zero-padded (in dB) to at least 128 frames."""
        db = 10.0 * torch.log10(self.melspec(waveforms).clamp(min=1e-10))
        db = torch.maximum(db, db.amax(dim=(1, 2), keepdim=True) - KUMAR_TOP_DB)
        db = db.transpose(1, 2)  # (B, T, 128)
        if db.shape[1] < KUMAR_MIN_FRAMES:
            db = nn.functional.pad(db, (0, 0, 0, KUMAR_MIN_FRAMES - db.shape[1]))
        return db[:, None]


class SupervisedEncoder(FrozenEncoder):
    """Penultimate-layer frames of a supervised baseline at 44.1 kHz.

    Args:
        options: Adapter options (architecture, head width, seed of the random twin).
    """

    VERSION = 1
    FAMILY = FAMILY

    def __init__(self, options: SupervisedOptions) -> None:
        super().__init__()
        self.options = options
        self.arch = options.arch
        self.sample_rate = SAMPLE_RATE
        self.embed_dim = EMBED_DIMS[options.arch]
        self.frontend = KumarFrontEnd() if options.arch == "kumar" else ReportFrontEnd()
        self.min_samples = {
            "vgg": HOP * (VggStyle.min_frames - 1),
            "crnn": HOP * (CrnnNet.min_frames - 1),
        }.get(options.arch, N_FFT)
        self.hop_seconds = {
            "cnn": WINDOW_SAMPLES,
            "vgg": HOP * 16,
            "lstm": WINDOW_SAMPLES,  # one clip-level frame: nominal
            "crnn": WINDOW_SAMPLES,
            "kumar": KUMAR_HOP * 64,
        }[options.arch] / SAMPLE_RATE
        with seeded(options.seed):
            self.net = build_network(options.arch, options.classes)
        self.eval()

    def _frames(self, waveforms: torch.Tensor) -> torch.Tensor:
        """Frames ``(b, T, D)`` of equal-length clips ``(b, L)`` (all frames valid)."""
        spec = self.frontend(waveforms)
        if self.arch == "vgg":
            return self.net.frames(spec)
        if self.arch == "kumar":
            return self.net.layer18_features(spec).mean(dim=3).transpose(1, 2)
        if self.arch == "lstm":
            n_frames = frames_from_samples(torch.full((waveforms.shape[0],), waveforms.shape[1]))
            assert int(n_frames[0]) == spec.shape[-1], "front end and frame count disagree"
            return self.net.embed(spec, n_frames).unsqueeze(1)  # the last valid step's hidden state
        return self.net.embed(spec).unsqueeze(1)  # crnn: the attention-pooled vector

    def _windows(self, waveforms: torch.Tensor, lengths: torch.Tensor) -> Frames:
        """CNN baseline: one 326-d frame per consecutive 5 s window, the last one zero-padded."""
        b, n = waveforms.shape
        lengths = lengths.to(waveforms.device).clamp(0, n)
        counts = torch.div(lengths + WINDOW_SAMPLES - 1, WINDOW_SAMPLES, rounding_mode="floor").clamp(min=1)
        n_win = int(counts.max())
        wav = waveforms * (torch.arange(n, device=waveforms.device)[None, :] < lengths[:, None])
        wav = nn.functional.pad(wav, (0, max(0, n_win * WINDOW_SAMPLES - n)))[:, : n_win * WINDOW_SAMPLES]
        mask = torch.arange(n_win, device=waveforms.device)[None, :] < counts[:, None]
        windows = wav.reshape(b, n_win, WINDOW_SAMPLES)[mask]
        out = torch.cat([self.net.embed(self.frontend(part)) for part in windows.split(8)])
        emb = out.new_zeros(b, n_win, self.embed_dim)
        emb[mask] = out
        return Frames(emb, mask)

    def encode(self, waveforms: torch.Tensor, lengths: torch.Tensor) -> Frames:
        """Penultimate-layer frames ``(B, T, D)`` and their mask (see the module docstring)."""
        if self.arch == "cnn":
            return self._windows(waveforms, lengths)
        return encode_per_length(waveforms, lengths, self._frames, self.min_samples)
