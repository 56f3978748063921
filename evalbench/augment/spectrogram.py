"""BYOL-A's log-mel view chain as batched, generator-driven torch modules.

BYOL for Audio (Niizumi et al., IJCNN 2021, "v1"; IEEE/ACM TASLP 2023, "v2")
makes each view of a pre-normalised log-mel crop ``(B, 1, 64, 96)`` with

- v1: :class:`MixupBank` → :class:`RandomResizeCrop` → :class:`PostNorm`;
- v2: :class:`MixupBank` → :class:`RandomResizeCrop` → :class:`RandomLinearFader` → :class:`PostNorm`,

where :class:`PostNorm` standardises the two views of a batch stacked into one
``2B`` batch (docs/methods.md §1.2–1.3).  Every random module takes an explicit CPU
``torch.Generator`` in ``forward(x, generator)``: random parameters are drawn on
the CPU with it and then moved to ``x.device``, so the same inputs and generator
state give the same outputs, and a resumed run (generator state and the mixup
bank's ``state_dict`` restored) continues bit-identically.  Everything runs on the
whole batch at once on ``x``'s device.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

EPS = torch.finfo(torch.float32).eps  # BYOL-A's eps for log compression, mixup and post-norm
_CUBIC_A = -0.75  # PyTorch's bicubic kernel coefficient (F.interpolate and grid_sample)


def mixup(x: torch.Tensor, z: torch.Tensor, lam: torch.Tensor, log_mixup_exp: bool = True) -> torch.Tensor:
    """Mix each sample of ``x`` with its partner in ``z``.

    Args:
        x: ``(B, ...)`` log-mel batch.
        z: Partners, same shape as ``x``.
        lam: ``(B,)`` mixing ratios λ (weight of the partner).
        log_mixup_exp: Mix in the linear-power domain, ``log((1 − λ)·eˣ + λ·eᶻ + eps)`` (BYOL-A's
            log-mixup-exp), else linearly, ``(1 − λ)·x + λ·z``.

    Returns:
        The mixed batch, shape of ``x``.
    """
    lam = lam.reshape(-1, *([1] * (x.dim() - 1))).to(device=x.device, dtype=x.dtype)
    if log_mixup_exp:
        return torch.log((1 - lam) * x.exp() + lam * z.exp() + EPS)
    return (1 - lam) * x + lam * z


class MixupBank(nn.Module):
    """Log-mixup-exp with a FIFO memory bank of past inputs (BYOL-A, docs/methods.md §1.3).

    Each sample i is mixed with a partner z_i drawn uniformly from the bank, with
    λ_i ~ U(0, alpha).  The bank holds the last ``size`` *un-mixed* inputs seen (in
    BYOL-A they are pre-normalised log-mels).  Partners come from the bank as it is
    before the call; afterwards the call's un-mixed inputs are pushed, oldest
    overwritten.  On the first call (empty bank) the input passes through unchanged
    and draws nothing from the generator.  Otherwise it draws λ (``torch.rand(B)``)
    and then partner slots (``torch.randint(filled, (B,))``), in that order.

    The bank is allocated at the first call's per-sample shape on ``x``'s device.
    It lives in buffers (``bank``, ``filled``, ``pointer``), so ``state_dict`` /
    ``load_state_dict`` restore it exactly; loading resizes the buffer as needed.

    Args:
        alpha: Upper bound of λ: 0.2 in v2 (TASLP 2023 and its code), 0.4 in the v1 paper (tuned with Optuna).
        size: Bank capacity, 2,048 in both versions.
        log_mixup_exp: Mix as ``log((1 − λ)eˣ + λeᶻ + eps)`` (BYOL-A's default), else linearly.
    """

    def __init__(self, alpha: float = 0.2, size: int = 2048, log_mixup_exp: bool = True) -> None:
        super().__init__()
        if not 0.0 <= alpha <= 1.0:
            raise ValueError(f"MixupBank: alpha must be in [0, 1], got {alpha}")
        if size < 1:
            raise ValueError(f"MixupBank: size must be >= 1, got {size}")
        self.alpha = float(alpha)
        self.size = int(size)
        self.log_mixup_exp = bool(log_mixup_exp)
        self.register_buffer("bank", torch.empty(0))
        self.register_buffer("filled", torch.zeros((), dtype=torch.long))  # occupied slots, <= size
        self.register_buffer("pointer", torch.zeros((), dtype=torch.long))  # next slot to write

    def extra_repr(self) -> str:
        """Constructor arguments, shown by ``repr``."""
        return f"alpha={self.alpha}, size={self.size}, log_mixup_exp={self.log_mixup_exp}"

    def content(self) -> torch.Tensor:
        """The bank's inputs in arrival order, oldest first, ``(filled, ...)``."""
        filled, pointer = int(self.filled), int(self.pointer)
        if filled < self.size:
            return self.bank[:filled]
        return torch.cat([self.bank[pointer:], self.bank[:pointer]])

    def forward(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """Mix ``x`` with partners from the bank, then push ``x`` into the bank.

        Args:
            x: ``(B, C, F, T)`` pre-normalised log-mels (any ``(B, ...)`` shape works).
            generator: CPU generator for λ and the partner slots.

        Returns:
            The mixed batch, shape of ``x``.
        """
        if self.bank.numel() == 0:
            self.bank = torch.zeros(self.size, *x.shape[1:], dtype=x.dtype, device=x.device)
        elif self.bank.shape[1:] != x.shape[1:]:
            raise ValueError(f"MixupBank: bank holds {tuple(self.bank.shape[1:])}, got input {tuple(x.shape[1:])}")
        filled = int(self.filled)
        if filled == 0:
            out = x
        else:
            lam = torch.rand(x.shape[0], generator=generator) * self.alpha
            slots = torch.randint(filled, (x.shape[0],), generator=generator).to(x.device)
            out = mixup(x, self.bank[slots], lam, self.log_mixup_exp)
        self._push(x.detach())
        return out

    def _push(self, x: torch.Tensor) -> None:
        """Write ``x`` at the pointer (FIFO); only the last ``size`` samples of a larger batch survive."""
        n, keep = x.shape[0], min(x.shape[0], self.size)
        pointer = int(self.pointer)
        slots = (pointer + n - keep + torch.arange(keep, device=x.device)) % self.size
        self.bank[slots] = x[n - keep :].to(self.bank.dtype)
        self.pointer.fill_((pointer + n) % self.size)
        self.filled.fill_(min(int(self.filled) + n, self.size))

    def _load_from_state_dict(
        self, state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys, error_msgs
    ):
        saved = state_dict.get(prefix + "bank")
        if saved is not None and saved.shape != self.bank.shape:  # lazily allocated on either side
            self.bank = torch.empty(saved.shape, dtype=saved.dtype, device=self.bank.device)
        super()._load_from_state_dict(
            state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys, error_msgs
        )


def _bicubic_weights(start: torch.Tensor, size: torch.Tensor, out_len: int, in_len: int) -> torch.Tensor:
    """Matrices resampling ``[start, start + size)`` of an axis of length ``in_len`` to ``out_len`` points.

    Row i of sample b holds the bicubic (A = −0.75) weights of output i with
    ``align_corners=True``: source coordinate ``i·(size − 1)/(out_len − 1)``, taps
    outside the crop clamped to its edge; the arithmetic mirrors PyTorch's
    ``upsample_bicubic2d`` (float32 scale, floor index, fraction clamped to [0, 1]).

    Returns:
        ``(B, out_len, in_len)`` float32 weights.
    """
    idx = torch.arange(out_len, device=size.device, dtype=torch.float32)
    scale = (size - 1).float() / (out_len - 1) if out_len > 1 else torch.zeros_like(size, dtype=torch.float32)
    src = scale[:, None] * idx[None]
    base = torch.minimum(src.floor().long(), (size - 1)[:, None])
    t = (src - base).clamp(0.0, 1.0)
    a = _CUBIC_A

    def near(d: torch.Tensor) -> torch.Tensor:  # |d| <= 1
        return ((a + 2) * d - (a + 3)) * d * d + 1

    def far(d: torch.Tensor) -> torch.Tensor:  # 1 < |d| < 2
        return ((a * d - 5 * a) * d + 8 * a) * d - 4 * a

    weights = torch.stack([far(t + 1), near(t), near(1 - t), far(2 - t)], dim=-1)
    taps = base[..., None] + torch.arange(-1, 3, device=size.device)
    taps = torch.minimum(taps.clamp(min=0), (size - 1)[:, None, None]) + start[:, None, None]
    matrix = torch.zeros(size.shape[0], out_len, in_len, device=size.device)
    return matrix.scatter_add_(2, taps, weights)


def resize_crop(
    x: torch.Tensor,
    top: torch.Tensor,
    left: torch.Tensor,
    h: torch.Tensor,
    w: torch.Tensor,
    canvas_t: int,
    canvas_f: int | None = None,
) -> torch.Tensor:
    """Paste ``x`` centred on a zero canvas, crop each sample's box and resize it back to ``(F, T)``.

    Equal, up to float rounding, to running
    ``F.interpolate(canvas[b:b+1, :, top:top+h, left:left+w], size=(F, T), mode="bicubic", align_corners=True)``
    per sample, but batched: bicubic resizing is separable, so each sample is two
    matrix products with per-sample weight matrices (:func:`_bicubic_weights`).

    Args:
        x: ``(B, C, F, T)`` batch.
        top: ``(B,)`` first canvas row of each crop.
        left: ``(B,)`` first canvas column of each crop.
        h: ``(B,)`` crop heights, ``1 <= h`` and ``top + h <= canvas_f``.
        w: ``(B,)`` crop widths, ``1 <= w`` and ``left + w <= canvas_t``.
        canvas_t: Canvas width (``>= T``); ``x`` sits at column offset ``(canvas_t − T) // 2``.
        canvas_f: Canvas height (``>= F``, default ``F``); ``x`` sits at row offset ``(canvas_f − F) // 2``.

    Returns:
        ``(B, C, F, T)`` resized crops, dtype of ``x``.
    """
    n_freq, n_time = x.shape[-2:]
    canvas_f = n_freq if canvas_f is None else canvas_f
    off_f, off_t = (canvas_f - n_freq) // 2, (canvas_t - n_time) // 2
    canvas = F.pad(x.float(), (off_t, canvas_t - n_time - off_t, off_f, canvas_f - n_freq - off_f))
    top, left, h, w = (v.to(device=x.device, dtype=torch.long) for v in (top, left, h, w))
    rows = _bicubic_weights(top, h, n_freq, canvas_f)  # (B, F, canvas_f)
    cols = _bicubic_weights(left, w, n_time, canvas_t)  # (B, T, canvas_t)
    out = rows[:, None] @ canvas @ cols.transpose(1, 2)[:, None]
    return out.to(x.dtype)


class RandomResizeCrop(nn.Module):
    """BYOL-A's Random Resize Crop (RRC), an approximation of pitch shift plus time stretch.

    The ``(F, T)`` input is pasted at the centre of a zero canvas of
    ``int(F·vf) × int(T·vt)`` with ``(vf, vt) = virtual_crop_scale`` (64 × 144 for
    the defaults: frequency is never extended, time gains 24 zero frames each
    side).  A box of height ``h = clip(int(U(freq_scale)·F), 1, canvas_f)`` and
    width ``w = clip(int(U(time_scale)·T), 1, canvas_t)`` is cut at a uniform
    integer corner in ``[0, canvas_f − h] × [0, canvas_t − w]`` and resized back to
    ``F × T`` with bicubic interpolation, ``align_corners=True`` (Niizumi et al.
    2021 §III-B, identical in v2; docs/methods.md §1.3).  In paper notation
    ``F_C = ⌊min(U(0.6, 1.5), 1)·F⌋`` and ``T_C = ⌊U(0.6, 1.5)·T⌋``.

    Args:
        virtual_crop_scale: Canvas size relative to the input, (frequency, time); BYOL-A: (1.0, 1.5).
        freq_scale: Range of the crop height relative to F; BYOL-A: (0.6, 1.5), capped by the canvas.
        time_scale: Range of the crop width relative to T; BYOL-A: (0.6, 1.5).
    """

    def __init__(
        self,
        virtual_crop_scale: tuple[float, float] = (1.0, 1.5),
        freq_scale: tuple[float, float] = (0.6, 1.5),
        time_scale: tuple[float, float] = (0.6, 1.5),
    ) -> None:
        super().__init__()
        for name, (lo, hi), floor in (
            ("virtual_crop_scale", virtual_crop_scale, 1.0),
            ("freq_scale", freq_scale, 0.0),
            ("time_scale", time_scale, 0.0),
        ):
            if not floor <= lo <= hi or hi <= 0:
                raise ValueError(f"RandomResizeCrop: {name} must be an increasing pair >= {floor}, got {(lo, hi)}")
        self.virtual_crop_scale = tuple(map(float, virtual_crop_scale))
        self.freq_scale = tuple(map(float, freq_scale))
        self.time_scale = tuple(map(float, time_scale))

    def extra_repr(self) -> str:
        """Constructor arguments, shown by ``repr``."""
        return (
            f"virtual_crop_scale={self.virtual_crop_scale}, freq_scale={self.freq_scale}, time_scale={self.time_scale}"
        )

    def canvas_size(self, n_freq: int, n_time: int) -> tuple[int, int]:
        """Canvas (height, width) for an ``(n_freq, n_time)`` input, e.g. (64, 144) for (64, 96)."""
        return int(n_freq * self.virtual_crop_scale[0]), int(n_time * self.virtual_crop_scale[1])

    def sample_params(
        self, batch: int, n_freq: int, n_time: int, generator: torch.Generator
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """Draw each sample's crop box with one ``torch.rand((batch, 4), dtype=float64)`` call.

        Columns are the height, width, top and left draws, in that order.

        Returns:
            ``(top, left, h, w)``, each a ``(batch,)`` int64 CPU tensor.
        """
        canvas_f, canvas_t = self.canvas_size(n_freq, n_time)
        u = torch.rand((batch, 4), generator=generator, dtype=torch.float64)
        (f_lo, f_hi), (t_lo, t_hi) = self.freq_scale, self.time_scale
        h = ((f_lo + (f_hi - f_lo) * u[:, 0]) * n_freq).long().clamp(1, canvas_f)
        w = ((t_lo + (t_hi - t_lo) * u[:, 1]) * n_time).long().clamp(1, canvas_t)
        top = torch.minimum((u[:, 2] * (canvas_f - h + 1)).long(), canvas_f - h)
        left = torch.minimum((u[:, 3] * (canvas_t - w + 1)).long(), canvas_t - w)
        return top, left, h, w

    def forward(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """Randomly crop and resize every sample of ``x``.

        Args:
            x: ``(B, C, F, T)`` log-mel batch.
            generator: CPU generator for the crop boxes.

        Returns:
            ``(B, C, F, T)`` augmented batch.
        """
        n_freq, n_time = x.shape[-2:]
        canvas_f, canvas_t = self.canvas_size(n_freq, n_time)
        top, left, h, w = self.sample_params(x.shape[0], n_freq, n_time, generator)
        return resize_crop(x, top, left, h, w, canvas_t, canvas_f)


class RandomLinearFader(nn.Module):
    """BYOL-A v2's Random Linear Fader (RLF): a random gain ramp over time in the log domain.

    With a, b ~ U(−gain, gain) per sample (``torch.rand((B, 2))``, columns a, b),
    ``S[t] = a + (b − a)·t/T`` for ``t = 0 … T−1`` is added to every frequency
    bin; a < b fades in, a > b fades out (Niizumi et al., TASLP 2023 §III-C;
    docs/methods.md §1.3).

    Args:
        gain: Bound of the ramp's end points; 1.0 in BYOL-A v2.
    """

    def __init__(self, gain: float = 1.0) -> None:
        super().__init__()
        if gain < 0:
            raise ValueError(f"RandomLinearFader: gain must be >= 0, got {gain}")
        self.gain = float(gain)

    def extra_repr(self) -> str:
        """Constructor arguments, shown by ``repr``."""
        return f"gain={self.gain}"

    def forward(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """Add one random linear ramp per sample along the last (time) axis.

        Args:
            x: ``(B, C, F, T)`` log-mel batch.
            generator: CPU generator for the ramp end points.

        Returns:
            The faded batch, shape of ``x``.
        """
        n_time = x.shape[-1]
        ab = (torch.rand((x.shape[0], 2), generator=generator) * 2 - 1) * self.gain
        a, b = ab.to(device=x.device, dtype=x.dtype).unbind(1)
        t = torch.arange(n_time, device=x.device, dtype=x.dtype) / n_time
        ramp = a[:, None] + (b - a)[:, None] * t[None]
        return x + ramp.reshape(x.shape[0], *([1] * (x.dim() - 2)), n_time)


class PostNorm(nn.Module):
    """BYOL-A's post-normalisation: standardise a batch with its own scalar mean and std.

    BYOL-A stacks both views into one ``2B`` batch and normalises over axes
    (0, 2, 3) of its single channel, i.e. one mean and one std for the whole
    batch, the std clamped below at ``eps`` (docs/methods.md §1.2).  Not random.

    Args:
        eps: Lower bound of the std; float32 machine epsilon as in BYOL-A.
    """

    def __init__(self, eps: float = EPS) -> None:
        super().__init__()
        self.eps = float(eps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return ``(x − mean(x)) / max(std(x), eps)`` over all elements.

        NOTE: ``std`` is torch's default (Bessel-corrected) estimate; over the
        2·256·64·96 elements of a BYOL-A batch it equals the biased one to 1e-6.
        """
        return (x - x.mean()) / x.std().clamp(min=self.eps)
