"""The ``clmr`` adapter: CLMR's SampleCNN on consecutive 59,049-sample chunks.

Spijkervet & Burgoyne, "Contrastive Learning of Musical Representations",
ISMIR 2021 (docs/methods.md §4) pretrain a SampleCNN (Lee et al., "Sample-level
Deep Convolutional Neural Networks for Music Auto-tagging Using Raw
Waveforms", SMC 2017) with SimCLR on raw 22,050 Hz audio.  The network maps a
fixed 59,049-sample (3^10 ≈ 2.68 s) chunk to one 512-d vector:

- stem: Conv1d(1→128, k3, s3) → BN → ReLU (59,049 → 19,683 samples);
- 9 blocks of Conv1d(k3, p1) → BN → ReLU → MaxPool1d(3, 3) with 128, 128,
  256, 256, 256, 256, 256, 256, 512 channels (19,683 → 1);
- Conv1d(512→512, k3, p1) → BN → ReLU → flatten (512).

CLMR's evaluation cuts each track into consecutive chunks and averages the
per-chunk outputs.  Here the frames *are* the chunks: frame t is the encoding
of samples ``[t·59049, (t+1)·59049)``, and ``mean`` pooling over the masked
frames is CLMR's chunk averaging.  The tail shorter than one chunk is dropped
(a 3 s clip gives 1 chunk, 6 s gives 2), as in CLMR's chunked evaluation.
NOTE: a clip shorter than one chunk (e.g. a 1 s keyword) is zero-padded on the
right to one chunk rather than dropped, so every clip has one frame; SampleCNN
never sees such padding in CLMR's music setting.

Each chunk is encoded on its own (the network's receptive field is exactly
one chunk) and samples beyond a clip's length are zeroed first, so a clip's
embedding does not depend on the rest of its batch.  Parameter names mirror
the official layout (``sequential.{0…10}.{0,1}.*``: conv, BN) without the
SimCLR projector, which is discarded after pretraining.
"""

from __future__ import annotations

import torch
from torch import nn

from evalbench.adapters.base import Frames, FrozenEncoder, seeded
from evalbench.adapters.options.clmr import CHUNK_SAMPLES, EMBED_DIM, SAMPLE_RATE, ClmrOptions

FAMILY = "clmr"
BLOCK_CHANNELS = (128, 128, 256, 256, 256, 256, 256, 256, 512)  # Lee et al. 2017 / CLMR (docs/methods.md §4.1)


class SampleCNN(nn.Module):
    """SampleCNN encoder: chunks ``(B, 59049)`` → ``(B, 512)`` (Lee et al. 2017, as configured by CLMR).

    ``sequential[0]`` is the stride-3 stem, ``sequential[1:10]`` the nine
    conv/max-pool blocks, ``sequential[10]`` the final 512-channel convolution.
    """

    def __init__(self) -> None:
        super().__init__()
        layers = [nn.Sequential(nn.Conv1d(1, 128, 3, stride=3), nn.BatchNorm1d(128), nn.ReLU())]
        in_channels = 128
        for channels in BLOCK_CHANNELS:
            layers.append(
                nn.Sequential(
                    nn.Conv1d(in_channels, channels, 3, padding=1),
                    nn.BatchNorm1d(channels),
                    nn.ReLU(),
                    nn.MaxPool1d(3, stride=3),
                )
            )
            in_channels = channels
        layers.append(nn.Sequential(nn.Conv1d(512, 512, 3, padding=1), nn.BatchNorm1d(512), nn.ReLU()))
        self.sequential = nn.Sequential(*layers)
        # NOTE: He-normal weights and zero biases (He et al., ICCV 2015) instead of PyTorch's default init, which
        # CLMR's code keeps: the default shrinks the signal ~2.4x per layer, so an *untrained* SampleCNN (the random
        # twin, whose BatchNorm statistics are the identity) maps every clip to almost the same vector.
        for m in self.modules():
            if isinstance(m, nn.Conv1d):
                nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
                nn.init.zeros_(m.bias)

    def forward(self, chunks: torch.Tensor) -> torch.Tensor:
        """512-d encodings ``(B, 512)`` of chunks ``(B, 59049)``."""
        if chunks.shape[-1] != CHUNK_SAMPLES:
            raise ValueError(f"SampleCNN takes {CHUNK_SAMPLES}-sample chunks, got {chunks.shape[-1]}")
        return self.sequential(chunks[:, None]).flatten(1)

    def zero_activations(self) -> list[torch.Tensor]:
        """Every layer's activation ``(1, C, N)`` for an all-zero chunk, input first (for :meth:`forward_prefix`)."""
        h = torch.zeros(1, 1, CHUNK_SAMPLES, device=self.sequential[0][0].weight.device)
        acts = [h]
        for block in self.sequential:
            h = block(h)
            acts.append(h)
        return acts

    def forward_prefix(self, chunks: torch.Tensor, length: int, zeros: list[torch.Tensor]) -> torch.Tensor:
        """:meth:`forward` of chunks that are zero from sample ``length`` on, computing only what the audio reaches.

        A 1 s clip zero-padded to one 2.68 s chunk is 63 % zeros.  Past the receptive field of the audio, every
        layer's activation equals its activation for an all-zero chunk (``zeros``, from :meth:`zero_activations`
        with the same weights), right edge included; so each layer is run only on the prefix the audio reaches
        (stem: ``ceil(length/3)`` positions; a padded conv: one more; a pool: ``ceil(·/3)``), its input completed
        from ``zeros`` up to the next pool window and one position of conv context.  Equal to :meth:`forward`
        within float rounding (38 % of its multiply-adds for a 1 s clip).  Eval mode only (BatchNorm statistics).
        """
        blocks = list(self.sequential)
        h = min(max(1, -(-length // 3)), zeros[1].shape[-1])
        act = blocks[0](chunks[:, None, : 3 * h])  # stride-3, unpadded stem: output j reads samples 3j … 3j+2
        for i, block in enumerate(blocks[1:], start=1):
            n_in, n_out = zeros[i].shape[-1], zeros[i + 1].shape[-1]
            pooled = len(block) == 4
            h_out = min(-(-(h + 1) // 3) if pooled else h + 1, n_out)
            need = min(n_in, 3 * h_out + 3 if pooled else h_out + 1)  # pool windows + one position of conv context
            if h < need:
                act = torch.cat([act, zeros[i][:, :, h:need].expand(act.shape[0], -1, -1)], dim=2)
            act, h = block(act[:, :, :need])[:, :, :h_out], h_out
        return act.flatten(1)


def chunk_counts(lengths: torch.Tensor) -> torch.Tensor:
    """Chunks per clip: whole 59,049-sample chunks, at least one (short clips are zero-padded)."""
    return torch.div(lengths, CHUNK_SAMPLES, rounding_mode="floor").clamp(min=1)


class ClmrEncoder(FrozenEncoder):
    """CLMR SampleCNN chunk embeddings (``embed_dim = 512``) at 22,050 Hz.

    Args:
        options: Adapter options (seed of the random twin).
        chunk_batch: Most chunks encoded in one forward pass (bounds memory on long clips).  None (default): 1 on
            CPU, where a chunk's first-layer activations (128 × 19,683 floats, 10 MB) stay cache-resident and one
            chunk at a time measured 2x faster than 32 (and makes every clip's embedding bit-independent of its
            batch); 64 elsewhere (GPUs want the batch).
    """

    VERSION = 2  # 2: one chunk per forward on CPU, zero tails not recomputed (v1 rounding differs by < 1e-6)
    FAMILY = FAMILY

    def __init__(self, options: ClmrOptions, chunk_batch: int | None = None) -> None:
        super().__init__()
        self.options = options
        self.chunk_batch = chunk_batch
        self.sample_rate = SAMPLE_RATE
        self.embed_dim = EMBED_DIM
        self.hop_seconds = CHUNK_SAMPLES / SAMPLE_RATE  # one frame per chunk, ≈ 2.68 s
        with seeded(options.seed):
            self.net = SampleCNN()
        self.eval()

    def encode(self, waveforms: torch.Tensor, lengths: torch.Tensor) -> Frames:
        """Chunk embeddings ``(B, C, 512)``; the mask marks each clip's own chunks.

        Args:
            waveforms: ``(B, N)`` audio at 22,050 Hz.
            lengths: ``(B,)`` valid samples per clip.
        """
        b, n = waveforms.shape
        lengths = lengths.to(waveforms.device).clamp(0, n)
        counts = chunk_counts(lengths)
        n_chunks = int(counts.max())
        wav = waveforms * (torch.arange(n, device=waveforms.device)[None, :] < lengths[:, None])
        wav = nn.functional.pad(wav, (0, max(0, n_chunks * CHUNK_SAMPLES - n)))[:, : n_chunks * CHUNK_SAMPLES]
        chunks = wav.reshape(b, n_chunks, CHUNK_SAMPLES)
        mask = torch.arange(n_chunks, device=waveforms.device)[None, :] < counts[:, None]
        valid = chunks[mask]  # only chunks with real audio are encoded
        own = torch.minimum(lengths[:, None] - CHUNK_SAMPLES * torch.arange(n_chunks, device=lengths.device),
                            torch.tensor(CHUNK_SAMPLES, device=lengths.device))[mask]  # fmt: skip
        step = self.chunk_batch or (1 if valid.device.type == "cpu" else 64)
        zeros = None if self.training or bool((own >= CHUNK_SAMPLES).all()) else self.net.zero_activations()
        parts = []
        for part, part_len in zip(valid.split(step), own.split(step), strict=True):
            longest = int(part_len.max())
            full = zeros is None or longest >= CHUNK_SAMPLES
            parts.append(self.net(part) if full else self.net.forward_prefix(part, longest, zeros))
        out = torch.cat(parts)
        emb = out.new_zeros(b, n_chunks, EMBED_DIM)
        emb[mask] = out
        return Frames(emb, mask)
