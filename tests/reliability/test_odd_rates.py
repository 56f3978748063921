"""Sample rates whose resampling kernel would not fit in memory are refused by name.

torchaudio's windowed-sinc resampler builds one filter phase per output sample
of a period of the reduced rate ratio; a rate one hertz off a standard one
(44,101 Hz, typical of a damaged header) does not reduce and would need a
2.8 GB kernel.  :class:`~evalbench.data.audio.Resampler` refuses such pairs
before allocating anything; ordinary odd rates still resample correctly.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from evalbench.data.audio import load_clip
from evalbench.data.resample import MAX_KERNEL_ELEMENTS, Resampler, kernel_elements
from evalbench.errors import AudioDecodeError


def _tone(path: Path, sr: int, seconds: float = 1.0, freq: float = 440.0) -> None:
    t = np.arange(round(seconds * sr)) / sr
    sf.write(path, (0.5 * np.sin(2 * np.pi * freq * t)).astype(np.float32), sr, subtype="FLOAT")


@pytest.mark.parametrize(
    ("orig", "new", "elements"),
    [(44100, 16000, 160 * (441 + 2 * 17)), (16000, 16000 * 3, 3 * (1 + 2 * 7)), (44101, 16000, 16000 * (44101 + 34))],
)
def test_kernel_size_matches_torchaudio(orig: int, new: int, elements: int) -> None:
    import torchaudio

    assert kernel_elements(orig, new) == elements
    if elements < MAX_KERNEL_ELEMENTS:  # the formula is torchaudio's actual kernel size
        assert torchaudio.transforms.Resample(orig, new).kernel.numel() == elements


def test_a_rate_whose_kernel_needs_gigabytes_is_refused_naming_the_file(tmp_path: Path) -> None:
    path = tmp_path / "odd.wav"
    _tone(path, 44101)
    with pytest.raises(AudioDecodeError) as err:
        load_clip(path, "odd.wav", 1.0, 16000, "start", 0, Resampler())
    message = str(err.value)
    assert message.startswith(str(path)) and "44101 Hz to 16000 Hz" in message and "2.6 GiB" in message


def test_an_odd_rate_with_a_small_kernel_still_resamples_correctly(tmp_path: Path) -> None:
    path = tmp_path / "odd.wav"
    _tone(path, 12345)  # 12345/16000 = 2469/3200: 8.0 M weights, under the limit
    wav, valid = load_clip(path, "odd.wav", 1.0, 16000, "start", 0, Resampler())
    assert valid == 16000 and wav.shape == (16000,)
    spectrum = np.abs(np.fft.rfft(wav[1000:-1000] * np.hanning(14000)))
    assert abs(np.argmax(spectrum) * 16000 / 14000 - 440.0) < 2.0  # the tone keeps its pitch
    assert np.sqrt(np.mean(wav[1000:-1000] ** 2)) == pytest.approx(0.5 / np.sqrt(2), rel=0.02)
