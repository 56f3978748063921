"""Frame centres of each adapter's frames: the timestamps of :func:`~evalbench.hear.get_timestamp_embeddings`.

Timestamp embeddings are the adapter's own frames, stamped with frame
centres in milliseconds (:func:`frame_times`, per adapter):

=============  ===================================================================  ========
adapter        frame ``j`` is centred at                                            hop
=============  ===================================================================  ========
logmel,        STFT frame ``j`` (centred framing): ``j · hop_length / sr``          10 ms
randproj
byola          middle of the ``d`` log-mel frames its pooling cell summarises:      40 ms v2,
               ``(d·j + (d − 1)/2) · hop_length / sr``, ``d`` = 4 (v2) or 8 (v1)   80 ms v1
msn            middle of its log-mel window ``[s, e)``: ``(s + e − 1)/2 · hop / sr``  0.64 s or
               (``window_frames`` 64 or 96); **the last window is longer or shorter  0.96 s
               when the clip is not a whole number of windows, so its centre is
               off the uniform grid** (HEAR asks for a uniform hop; the
               conformance check fails on such lengths, e.g. 4.0 s)
clar           receptive-field centre of the ResNet-18's output ``j``:              256 ms
               ``32·j`` STFT frames (2-D), sample ``32·j + 6`` (1-D)               (2 ms 1-D)
clmr           middle of 59,049-sample chunk ``j``; a clip shorter than one chunk    2.68 s
               (one zero-padded chunk) is stamped at the middle of its audio
supervised     vgg ``(16·j + 7.5)``, kumar ``(64·j + 63.5)`` STFT frames (receptive  varies
               -field centres); cnn: middle of the real audio of 5-s window ``j``
               (the last one is off the grid); lstm, crnn: one clip-level frame at
               the middle of the clip
=============  ===================================================================  ========

Timestamps are clamped to ``[0, duration]`` (only clips shorter than an
adapter's minimum input have frames centred beyond their end).  An adapter
missing from this table (a new family) cannot state its frame times:
:func:`~evalbench.hear.get_timestamp_embeddings` raises for it, naming it, while
scene embeddings work.  Hops above 50 ms (everything but logmel, randproj, BYOL-A
v2 and CLAR 1-D) draw a warning from HEAR validators; they are the encoders'
true frame rates, not resampled.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from evalbench.errors import EvalbenchError

FrameRule = Callable[[Any, int, int], np.ndarray]


def _grid(n_frames: int, scale: float, offset: float, unit_seconds: float) -> np.ndarray:
    """``(scale · j + offset) · unit_seconds`` for ``j < n_frames``: an affine receptive-field-centre map."""
    return (scale * np.arange(n_frames, dtype=np.float64) + offset) * unit_seconds


def _logmel_times(enc: Any, n_samples: int, n_frames: int) -> np.ndarray:
    fe = enc.frontend.options
    return _grid(n_frames, 1.0, 0.0, fe.hop_length / fe.sample_rate)


def _byola_times(enc: Any, n_samples: int, n_frames: int) -> np.ndarray:
    fe, d = enc.options.frontend, enc.net.downsample
    return _grid(n_frames, d, (d - 1) / 2, fe.hop_length / fe.sample_rate)


def _msn_times(enc: Any, n_samples: int, n_frames: int) -> np.ndarray:
    from evalbench.adapters.vit import window_bounds

    fe, opts = enc.options.frontend, enc.options
    n_mel = 1 + max(n_samples, fe.n_fft) // fe.hop_length
    n_valid = int(enc.frontend.frame_mask(torch.tensor([n_samples]), n_mel).sum())
    bounds = window_bounds(n_valid, opts.window_frames, opts.min_tail_frames)
    return np.array([(s + e - 1) / 2 for s, e in bounds], dtype=np.float64) * fe.hop_length / fe.sample_rate


def _clmr_times(enc: Any, n_samples: int, n_frames: int) -> np.ndarray:
    from evalbench.adapters.options.clmr import CHUNK_SAMPLES

    if n_samples < CHUNK_SAMPLES:
        return np.array([n_samples / 2 / enc.sample_rate])
    return _grid(n_samples // CHUNK_SAMPLES, CHUNK_SAMPLES, CHUNK_SAMPLES / 2, 1 / enc.sample_rate)


def _clar_times(enc: Any, n_samples: int, n_frames: int) -> np.ndarray:
    from evalbench.adapters.clar import DOWNSAMPLE
    from evalbench.adapters.clar_frontend import HOP

    # torchvision's ResNet-18 (2-D): conv 7/2/3, max-pool 3/2/1, 3×3 convs with padding 1: output j is centred on
    # input column 32·j.  The 1-D ResNet: conv 7/2/3, max-pool 9/2/1 (centre shifted by 3), kernel-9 convs with
    # padding 4: output j is centred on sample 32·j + 6.
    if enc.frontend is not None:
        return _grid(n_frames, DOWNSAMPLE, 0.0, HOP / enc.sample_rate)
    return _grid(n_frames, DOWNSAMPLE, 6.0, 1 / enc.sample_rate)


def _supervised_times(enc: Any, n_samples: int, n_frames: int) -> np.ndarray:
    from evalbench.adapters.supervised import HOP, KUMAR_HOP, WINDOW_SAMPLES

    sr, arch = enc.sample_rate, enc.arch
    if arch == "vgg":  # four [3×3 conv (pad 1) ×2 → 2×2 max-pool] blocks
        return _grid(n_frames, 16, 7.5, HOP / sr)
    if arch == "kumar":  # six 2×2 max-pools, then layer 18's 2×2 conv without padding
        return _grid(n_frames, 64, 63.5, KUMAR_HOP / sr)
    if arch == "cnn":  # consecutive 5-s windows, the last zero-padded: the middle of each window's real audio
        count = max(1, -(-n_samples // WINDOW_SAMPLES))
        starts = np.arange(count) * WINDOW_SAMPLES
        return (starts + np.minimum(starts + WINDOW_SAMPLES, n_samples)) / 2 / sr
    return np.array([n_samples / 2 / sr])  # lstm, crnn: one clip-level frame


_FRAME_TIMES: dict[str, FrameRule] = {
    "logmel": _logmel_times,
    "randproj": _logmel_times,
    "byola": _byola_times,
    "msn": _msn_times,
    "clar": _clar_times,
    "clmr": _clmr_times,
    "supervised": _supervised_times,
}


def frame_times(encoder: Any, adapter: str, n_samples: int, n_frames: int) -> np.ndarray:
    """Centres in seconds of the ``n_frames`` frames the adapter gives a clip of ``n_samples`` samples.

    Raises:
        EvalbenchError: The adapter is not in the table of the module docstring
            (it cannot state its frame times), or its rule and its output
            disagree on the frame count (a defect).
    """
    rule = _FRAME_TIMES.get(adapter)
    if rule is None:
        raise EvalbenchError(
            f"evalbench.hear: adapter '{adapter}' does not state its frame times, so it has no timestamp "
            "embeddings here (scene embeddings work); add its rule to evalbench.hear._FRAME_TIMES"
        )
    times = np.asarray(rule(encoder, int(n_samples), int(n_frames)), dtype=np.float64)
    if times.shape != (n_frames,):
        raise EvalbenchError(
            f"evalbench.hear: adapter '{adapter}' gave {n_frames} frame(s) for {n_samples} samples but its frame-time "
            f"rule counts {times.shape[0]}; the rule is out of date"
        )
    return times
