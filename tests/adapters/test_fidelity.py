"""Embedding fidelity: evalbench's batched, masked encoding equals the reference computation of a whole clip.

The reference evaluation (BYOL-A's, EVAR's) computes a full-length clip's
log-mel with a centred STFT over the clip, runs the network on every frame and
pools every output frame.  The foundation's mask dropped the last frames of
such a clip because their STFT windows reach past the clip's end (into the
STFT's own edge reflection, not into evalbench's padding).  These tests pin the
fix: a full-length clip keeps every frame, and a shorter clip in a padded batch
gets exactly the frames it gets alone.
"""

from __future__ import annotations

import pytest
import torch
import torchaudio

from evalbench.adapters.byola import ByolaEncoder
from evalbench.adapters.frontend import LogMelFrontEnd, reflect_pad_each
from evalbench.adapters.options import LogMelFrontEndOptions
from evalbench.adapters.options.byola import ByolaOptions
from evalbench.adapters.pooling import pool_mean_max
from tests.adapters.helpers import clips

# Different computation paths (batched gather + STFT vs torchaudio's own centring) agree to float rounding.
RTOL, ATOL = 1e-5, 1e-5


def reference_logmel(fe: LogMelFrontEndOptions, wav: torch.Tensor) -> torch.Tensor:
    """The reference front end on one unpadded clip: torchaudio's centred mel spectrogram, then log."""
    mel = torchaudio.transforms.MelSpectrogram(
        sample_rate=fe.sample_rate,
        n_fft=fe.n_fft,
        win_length=fe.win_length,
        hop_length=fe.hop_length,
        f_min=fe.f_min,
        f_max=fe.f_max,
        n_mels=fe.n_mels,
        power=2.0,
        center=True,
        mel_scale=fe.mel_scale,
        norm=fe.norm,
    )
    return torch.log(mel(wav) + fe.eps)


def test_reflect_pad_each_equals_torch_reflect_on_each_clip_alone() -> None:
    wav, lengths = clips(16000, [1.0, 0.5, 0.2, 0.04])
    padded = reflect_pad_each(wav, lengths, 512, 1024)
    for i, n in enumerate(lengths.tolist()):
        alone = torch.nn.functional.pad(wav[i : i + 1, :n], (0, max(0, 1024 - n)))
        ref = torch.nn.functional.pad(alone[None], (512, 512), mode="reflect")[0, 0]
        torch.testing.assert_close(padded[i, : len(ref)], ref, rtol=0, atol=0)  # a gather: exact copies
        assert not padded[i, len(ref) :].any()


def test_full_length_clip_keeps_every_log_mel_frame() -> None:
    fe = LogMelFrontEndOptions()
    front = LogMelFrontEnd(fe)
    wav, lengths = clips(16000, [1.0, 0.6])
    spec = front(wav, lengths)
    ref = reference_logmel(fe, wav[0])
    assert spec.shape[-1] == ref.shape[-1] == 1 + 16000 // fe.hop_length
    assert front.frame_mask(lengths, spec.shape[-1])[0].all()  # every frame of the unpadded clip is valid
    torch.testing.assert_close(spec[0], ref, rtol=RTOL, atol=ATOL)
    short = reference_logmel(fe, wav[1, : lengths[1]])
    assert int(front.frame_mask(lengths, spec.shape[-1])[1].sum()) == short.shape[-1]
    torch.testing.assert_close(spec[1, :, : short.shape[-1]], short, rtol=RTOL, atol=ATOL)


@pytest.mark.parametrize(("version", "feature_d"), [("v1", 512), ("v2", 3072)])
def test_byola_pooled_embedding_of_a_full_length_clip_uses_every_frame(version: str, feature_d: int) -> None:
    fe = LogMelFrontEndOptions()
    enc = ByolaEncoder(ByolaOptions(version=version, feature_d=feature_d, norm_mean=-6.0, norm_std=4.0)).eval()
    wav, lengths = clips(16000, [2.0, 1.3, 0.4])
    with torch.inference_mode():
        frames = enc.encode(wav, lengths)
        pooled = pool_mean_max(frames)
        for i, n in enumerate(lengths.tolist()):
            x = (reference_logmel(fe, wav[i, :n]) + 6.0) / 4.0  # the reference: clip alone, all frames, no mask
            ref = enc.net(x[None, None])
            expected = ref.mean(1) + ref.max(1).values
            assert int(frames.mask[i].sum()) == ref.shape[1] == x.shape[-1] // enc.net.downsample
            torch.testing.assert_close(pooled[i : i + 1], expected, rtol=RTOL, atol=ATOL)
    assert frames.mask[0].all()  # the longest, unpadded clip: nothing masked
