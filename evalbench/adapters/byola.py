"""The ``byola`` adapter: BYOL-A v1/v2 frame embeddings of whole clips.

Evaluation follows BYOL-A's downstream recipe (Niizumi et al., IJCNN 2021;
TASLP 2023; docs/methods.md §1.2): 64-band log-mel → scalar normalisation
``(x − μ)/σ`` with μ, σ fitted on the task's training clips → the encoder on the
*whole* clip (fully convolutional in time) → frames ``(B, T', D)`` → pooling
(``mean_max`` in the encoder YAMLs: time mean + time max, summed).

Batch invariance (docs/protocol.md §4, flaw 6).  Clips in a batch are zero-padded
to the longest one, and each is encoded exactly as if it were alone, with every
one of its own frames kept: the front end reflects at each clip's own end
(:class:`~evalbench.adapters.frontend.LogMelFrontEnd`), the normalised log-mel
is zeroed past the clip's frames, and the network zeroes every conv input past
the clip's (halving) length (:meth:`_AudioNTT.conv_maps`), which is what its
own zero padding gives a clip alone.  A clip of L log-mel frames thus keeps
``⌊L/8⌋`` output frames (v1) or ``⌊L/4⌋`` (v2), the frames at its true end
included, as the reference evaluation computes them for an unpadded clip;
only frames that exist because of padding are masked.  Clips under
``2**blocks`` frames are zero-extended to that length, alone or batched.

Checkpoints (docs/methods.md §1.6): an official bare state dict
(``pretrained_weights/AudioNTT2020-BYOLA-64x96d{512,1024,2048}.pth`` or
``v2/AudioNTT2022-BYOLA-64x96d2048.pth`` from the nttcslab/byol-a repository,
supplied by the user) or an evalbench checkpoint of family ``byola``; both are
read weights-only and key-checked exactly.  Without a checkpoint the network is
initialised from ``options.seed``: the "random twin" floor.  The network always
stays in eval mode (dropout off, BatchNorm running statistics).

NOTE: the front end is torchaudio's mel spectrogram with the Slaney mel scale
and Slaney area norm (docs/methods.md §1.1, §1.7).  The v1 weights were trained on
librosa's Slaney filterbank and v2 on nnAudio; the filter definition is the
same (``tests/adapters/test_byola.py`` checks ours against the Slaney formula),
but STFT implementations differ in float rounding, so embeddings match the
official pipeline closely rather than bit for bit.
"""

from __future__ import annotations

import io
from pathlib import Path

import torch
import torch.nn.functional as F

from evalbench.adapters.base import Frames, FrozenEncoder, seeded
from evalbench.adapters.byola_nets import build_network
from evalbench.adapters.normalize import FittedLogMel
from evalbench.adapters.options.byola import ByolaOptions
from evalbench.utils.io import atomic_write_bytes


class ByolaEncoder(FittedLogMel, FrozenEncoder):
    """BYOL-A (v1 AudioNTT2020 or v2 AudioNTT2022) behind the encoder protocol.

    ``needs_fit`` is True unless ``options`` gives fixed normalisation
    statistics; :meth:`fit` then computes the scalar log-mel mean and standard
    deviation over the valid frames of the training clips it is given.

    Args:
        options: Adapter options.
    """

    VERSION = 1
    FAMILY = "byola"
    needs_fit = True

    def __init__(self, options: ByolaOptions) -> None:
        super().__init__()
        self.options = options
        self.init_logmel(options.frontend, options.norm_mean, options.norm_std)
        with seeded(options.seed):
            self.net = build_network(options.version, options.feature_d)
        self.net.eval()
        fe = options.frontend
        self.sample_rate = fe.sample_rate
        self.embed_dim = self.net.embed_dim
        self.hop_seconds = self.net.downsample * fe.hop_length / fe.sample_rate

    def export_checkpoint(self, path: Path) -> None:
        """Write the network's weights as an official-layout bare state dict (atomically).

        The file has exactly the keys of the released BYOL-A weights
        (``features.*``, ``fc.*``), so it loads through :meth:`from_options` with
        the same options, and into the official code.

        Args:
            path: Output file.
        """
        buf = io.BytesIO()
        torch.save({k: v.detach().cpu().clone() for k, v in self.net.state_dict().items()}, buf)
        atomic_write_bytes(Path(path), buf.getvalue())

    def encode_features(self, features: torch.Tensor, lengths: torch.Tensor) -> Frames:
        """Frames ``(B, T', D)`` of whole clips from their log-mel, and their batch-invariance mask.

        ``encode(waveforms, lengths)`` (the encoder protocol) is this applied
        to :meth:`features`, the un-normalised log-mel; the normalisation
        and the network run here.

        Args:
            features: ``(B, 64, T)`` log-mel of :meth:`features` (16 kHz audio).
            lengths: ``(B,)`` valid samples per clip.

        Returns:
            Frames with ``T' ≈ T / 8`` (v1) or ``T / 4`` (v2) and the mask of
            frames whose receptive field is inside the clip (module docstring).

        Raises:
            RuntimeError: The normalisation was neither fitted nor fixed.
        """
        n_in = self.frontend.frame_mask(lengths, features.shape[-1]).sum(1)
        x = self.normalizer(features).unsqueeze(1)  # (B, 1, 64, T)
        x = x * (torch.arange(x.shape[-1], device=x.device)[None, :] < n_in[:, None].to(x.device))[:, None, None, :]
        # A clip under 2**blocks frames is zero-extended to that many (the pools need them), alone or batched.
        n_net = n_in.clamp(min=self.net.downsample)
        short = self.net.downsample - x.shape[-1]
        if short > 0:
            x = F.pad(x, (0, short))
        emb = self.net(x, n_net)
        n_out = self.net.valid_output_frames(n_net).clamp(min=1, max=emb.shape[1])
        mask = torch.arange(emb.shape[1], device=emb.device)[None, :] < n_out[:, None].to(emb.device)
        return Frames(emb, mask)


__all__ = ["ByolaEncoder"]
