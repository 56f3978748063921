"""Options of the ``byola`` adapter (torch-free, so ``evalbench encoders validate`` stays light).

BYOL-A comes in two network versions (docs/methods.md §1.4): v1 ``AudioNTT2020``
(Niizumi et al., IJCNN 2021) with output d ∈ {512, 1024, 2048}, and v2
``AudioNTT2022`` (Niizumi et al., IEEE/ACM TASLP 2023) whose output is 3072-d
(1024 conv features + 2048 MLP; the released file name's "d2048" is the MLP
width).  Both read the same 64-band log-mel front end, normalised with a scalar
mean and standard deviation that BYOL-A computes on the downstream task's
training split (docs/methods.md §1.2; docs/protocol.md §2.1 item 3).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from evalbench.adapters.options import LogMelFrontEndOptions, check_norm_and_seed

V1_DIMS = (512, 1024, 2048)  # released AudioNTT2020 widths (IJCNN 2021, Table I)
V2_DIM = 3072  # AudioNTT2022 output: 1024 conv features + 2048 MLP (TASLP 2023)
N_MELS = 64  # both networks are defined for 64 mel bands (docs/methods.md §1.1)


@dataclass(frozen=True)
class ByolaOptions:
    """Options of the BYOL-A adapter.

    Attributes:
        version: ``v1`` (AudioNTT2020, IJCNN 2021) or ``v2`` (AudioNTT2022,
            TASLP 2023).  Must match the checkpoint's architecture.
        feature_d: Output frame dimension: 512, 1024 or 2048 for v1; 3072 for v2
            (set it to 3072 even though the v2 weight file is named ``…d2048``).
        frontend: Log-mel front end; the defaults are BYOL-A's (16 kHz, 64 ms
            window, 10 ms hop, 64 Slaney mel bands, 60–7800 Hz, ``log(mel + eps)``).
            NOTE: the v1 weights were trained on librosa Slaney filters and v2 on
            nnAudio; evalbench computes the same Slaney scale and area norm with
            torchaudio, which matches up to small numerical differences.
        norm_mean: Fixed log-mel mean; with ``norm_std``, the adapter skips fitting.
            Default (both null): fitted on the downstream training split, as
            BYOL-A's evaluation does (e.g. the v1 README's SPCV2 stats −5.49 / 5.04).
        norm_std: Fixed log-mel standard deviation (positive); given with ``norm_mean``.
        seed: Seed of the random initialisation, used only without a checkpoint
            (the "random twin" floor).
    """

    version: Literal["v1", "v2"] = "v2"
    feature_d: int = V2_DIM
    frontend: LogMelFrontEndOptions = field(default_factory=LogMelFrontEndOptions)
    norm_mean: float | None = None
    norm_std: float | None = None
    seed: int = 0

    def __post_init__(self) -> None:
        if self.version == "v1" and self.feature_d not in V1_DIMS:
            raise ValueError(
                f"feature_d: v1 (AudioNTT2020) outputs {', '.join(map(str, V1_DIMS))}; got {self.feature_d}"
            )
        if self.version == "v2" and self.feature_d != V2_DIM:
            raise ValueError(
                f"feature_d: v2 (AudioNTT2022) outputs {V2_DIM} (1024 conv + 2048 MLP, even for the "
                f"'…d2048.pth' file); got {self.feature_d}"
            )
        if self.frontend.n_mels != N_MELS:
            raise ValueError(f"frontend: BYOL-A networks take n_mels {N_MELS}, got {self.frontend.n_mels}")
        check_norm_and_seed(self.norm_mean, self.norm_std, self.seed)

    @property
    def fixed_norm(self) -> bool:
        """True when the log-mel statistics are given, so nothing is fitted."""
        return self.norm_mean is not None
