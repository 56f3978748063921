"""The ``hear`` adapter: any installed module that follows the HEAR API, and its conformance check.

A HEAR module (docs/protocol.md §5; Turian et al., "HEAR: Holistic Evaluation of
Audio Representations", NeurIPS 2021 competition track) exposes
``load_model(model_file_path="")``, whose model carries ``sample_rate``,
``scene_embedding_size`` and ``timestamp_embedding_size``, plus
``get_timestamp_embeddings(audio, model)`` → (``(n, T, D)`` float32, frame
centres ``(n, T)`` in ms) and ``get_scene_embeddings(audio, model)`` → ``(n, D)``.

Wrapping it in the encoder protocol:

- HEAR models take equal-length audio and must not see our zero padding, so
  :meth:`HearEncoder.encode` trims every clip to its valid length and calls the
  module once per distinct length (in sub-batches of HEAR's size heuristic):
  a clip's embedding never depends on the other clips of its batch.
- Timestamp frames are valid when their centre lies within the clip's valid
  duration (the first frame is always kept); ``scene`` gives one frame per clip.
- Only torch models are run; a TensorFlow model is refused with a clear error.

The cache identity (module, version, weights SHA-256) is described in
:mod:`evalbench.adapters.options.hear`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any, Literal

import torch
from torch import nn

from evalbench.adapters.base import Encoder, Frames, encode_per_length
from evalbench.adapters.options.hear import HEAR_SAMPLE_RATES, HearOptions, import_module
from evalbench.errors import EvalbenchError

API_FUNCTIONS = ("load_model", "get_timestamp_embeddings", "get_scene_embeddings")
MODEL_ATTRIBUTES = ("sample_rate", "scene_embedding_size", "timestamp_embedding_size")
PROBE_SECONDS = 2.0  # silent audio used once at load time to read the timestamp hop


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0][:200]}" if text else type(exc).__name__


def import_hear_module(name: str) -> ModuleType:
    """Import a HEAR module and check that it exposes the three API functions.

    Raises:
        UnknownNameError: The module (or one of its dependencies) is not installed.
        EvalbenchError: It fails to import or lacks an API function.
    """
    module = import_module(name)
    missing = [f for f in API_FUNCTIONS if not callable(getattr(module, f, None))]
    if missing:
        raise EvalbenchError(
            f"hear module '{name}' lacks {', '.join(missing)}; it does not follow the HEAR API (docs/protocol.md §5)"
        )
    return module


def _is_tensorflow(obj: object) -> bool:
    return any(c.__module__.partition(".")[0] in ("tensorflow", "keras", "tf_keras") for c in type(obj).__mro__)


def load_hear_model(module: ModuleType, weights: str = "") -> nn.Module:
    """``load_model(weights)`` (or ``load_model()``), checked: a torch module with valid HEAR attributes.

    Raises:
        EvalbenchError: ``load_model`` fails, returns a TensorFlow or other
            non-torch object, or the model lacks or has invalid attributes.
    """
    name = module.__name__
    try:
        model = module.load_model(weights) if weights else module.load_model()
    except Exception as exc:  # the module's own failure, e.g. an unreadable weights file
        shown = f"'{weights}'" if weights else ""
        raise EvalbenchError(f"hear module '{name}': load_model({shown}) failed: {_first_line(exc)}") from None
    if _is_tensorflow(model):
        raise EvalbenchError(
            f"hear module '{name}' returned a TensorFlow model; TensorFlow models are not supported here "
            "(evalbench runs torch HEAR modules only)"
        )
    if not isinstance(model, nn.Module):
        raise EvalbenchError(f"hear module '{name}': load_model returned {type(model).__name__}, not a torch.nn.Module")
    missing = [a for a in MODEL_ATTRIBUTES if not hasattr(model, a)]
    if missing:
        raise EvalbenchError(
            f"hear module '{name}': the model lacks {', '.join(missing)} (HEAR API, docs/protocol.md §5)"
        )
    for attr in MODEL_ATTRIBUTES:
        value = getattr(model, attr)
        if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
            raise EvalbenchError(f"hear module '{name}': model.{attr} must be a positive int, got {value!r}")
    if model.sample_rate not in HEAR_SAMPLE_RATES:
        allowed = ", ".join(map(str, HEAR_SAMPLE_RATES))
        raise EvalbenchError(f"hear module '{name}': model.sample_rate {model.sample_rate} is not one of {allowed}")
    return model


def hear_batch_size(seconds: float, sample_rate: int) -> int:
    """HEAR's sounds-per-call heuristic: ``max(1, int(0.7 · (120 / seconds) · (16000 / sample_rate)))``."""
    return max(1, int(0.7 * (120.0 / max(seconds, 1e-3)) * (16000.0 / sample_rate)))


class HearEncoder(Encoder):
    """A HEAR-API module as an encoder.

    Args:
        options: Adapter options (module, embedding kind).
        weights: Weights file passed to ``load_model``, or ``""`` for the module's default.
    """

    VERSION = 1

    def __init__(self, options: HearOptions, weights: str = "") -> None:
        super().__init__()
        self.options = options
        self.module = import_hear_module(options.module)
        self.model = load_hear_model(self.module, weights)
        self.model.eval()
        self.sample_rate = self.model.sample_rate
        scene = options.embedding == "scene"
        self.embed_dim = self.model.scene_embedding_size if scene else self.model.timestamp_embedding_size
        self.hop_seconds = self._probe_hop()

    @classmethod
    def from_options(cls, options: HearOptions, checkpoint: Path | None) -> HearEncoder:
        """Build from options; ``checkpoint`` (the verified weights file) overrides ``options.weights``."""
        return cls(options, str(checkpoint) if checkpoint is not None else options.weights)

    def _fail(self, message: str) -> EvalbenchError:
        return EvalbenchError(
            f"hear module '{self.options.module}': {message}; "
            f"`evalbench encoders check hear:{self.options.module}` runs the conformance check"
        )

    def _device(self) -> torch.device:
        tensor = next(self.model.parameters(), None)
        if tensor is None:
            tensor = next(self.model.buffers(), None)
        return tensor.device if tensor is not None else torch.device("cpu")

    @torch.no_grad()
    def _probe_hop(self) -> float:
        """Frame hop in seconds, read from the timestamps of silent audio (else ``model.hop_seconds``)."""
        audio = torch.zeros(1, round(PROBE_SECONDS * self.sample_rate), device=self._device())
        if self.options.embedding == "scene":
            self._scene(audio)
        _, stamps = self._timestamps(audio, self.model.timestamp_embedding_size)
        if stamps.shape[1] >= 2:
            return float(stamps[0].diff().median()) / 1000.0
        return float(getattr(self.model, "hop_seconds", PROBE_SECONDS))

    def _timestamps(self, audio: torch.Tensor, width: int) -> tuple[torch.Tensor, torch.Tensor]:
        out = self.module.get_timestamp_embeddings(audio, self.model)
        if not isinstance(out, tuple | list) or len(out) != 2:
            raise self._fail("get_timestamp_embeddings must return (embeddings, timestamps)")
        emb, stamps = (torch.as_tensor(x).detach().to(audio.device) for x in out)
        n = audio.shape[0]
        if emb.ndim != 3 or stamps.shape != emb.shape[:2] or emb.shape[0] != n or emb.shape[2] != width:
            raise self._fail(
                f"get_timestamp_embeddings returned embeddings {tuple(emb.shape)} and timestamps "
                f"{tuple(stamps.shape)} for audio {tuple(audio.shape)}; expected ({n}, T, {width}) and ({n}, T)"
            )
        if emb.shape[1] == 0:
            raise self._fail(f"get_timestamp_embeddings returned no frames for {audio.shape[1]} samples")
        return emb.float(), stamps.double()

    def _scene(self, audio: torch.Tensor) -> torch.Tensor:
        emb = torch.as_tensor(self.module.get_scene_embeddings(audio, self.model)).detach().to(audio.device)
        expected = (audio.shape[0], self.model.scene_embedding_size)
        if tuple(emb.shape) != expected:
            raise self._fail(f"get_scene_embeddings returned {tuple(emb.shape)}, expected {expected}")
        return emb.float()

    def _frames(self, audio: torch.Tensor) -> Frames:
        """Frames of equal-length clips ``(b, L)``, in HEAR's batch sizes; frames centred past the end are masked."""
        n = audio.shape[1]
        step = hear_batch_size(n / self.sample_rate, self.sample_rate)
        embs, masks = [], []
        for chunk in audio.float().contiguous().split(step):
            if self.options.embedding == "scene":
                emb = self._scene(chunk).unsqueeze(1)
                mask = torch.ones(emb.shape[:2], dtype=torch.bool, device=emb.device)
            else:
                emb, stamps = self._timestamps(chunk, self.embed_dim)
                mask = stamps <= n / self.sample_rate * 1000.0 + 1e-3
                mask[:, 0] = True
            embs.append(emb)
            masks.append(mask)
        return Frames(torch.cat(embs), torch.cat(masks))

    @torch.no_grad()
    def encode(self, waveforms: torch.Tensor, lengths: torch.Tensor) -> Frames:
        """Frames ``(B, T, D)``: each clip trimmed to its valid length, equal lengths encoded together.

        The module never sees our zero padding, so a clip's embedding does not depend on its batch.
        """
        return encode_per_length(waveforms, lengths.clamp(min=1), self._frames)


@dataclass(frozen=True)
class Check:
    """One conformance check and its outcome."""

    name: str
    status: Literal["pass", "fail", "warn"]
    detail: str = ""


def _is_float32(x: Any) -> bool:
    return str(getattr(x, "dtype", "")) in ("torch.float32", "float32")


def _check_timestamps(module: ModuleType, model: nn.Module, seconds: float) -> list[Check]:
    """The timestamp-embedding checks on 2 sounds of seeded white noise lasting ``seconds``."""
    sr, width = model.sample_rate, model.timestamp_embedding_size
    audio = torch.rand(2, round(seconds * sr), generator=torch.Generator().manual_seed(0)) * 2 - 1
    label = f"timestamp embeddings on 2 × {seconds:g} s"
    try:
        emb, ts = module.get_timestamp_embeddings(audio, model)
    except Exception as exc:  # report any failure of the module as a failed check
        return [Check(f"{label}: returns (embeddings, timestamps)", "fail", _first_line(exc))]
    if not (hasattr(emb, "ndim") and hasattr(ts, "ndim")):
        return [Check(f"{label}: returns arrays", "fail", f"got {type(emb).__name__}, {type(ts).__name__}")]
    shapes = f"embeddings {tuple(emb.shape)}, timestamps {tuple(ts.shape)}"
    ok = emb.ndim == 3 and ts.ndim == 2 and emb.shape[0] == ts.shape[0] == 2
    checks = [Check(f"{label}: 3-D embeddings, 2-D timestamps, batch kept", "pass" if ok else "fail", shapes)]
    if not ok:
        return checks
    ok = tuple(emb.shape[:2]) == tuple(ts.shape) and emb.shape[2] == width
    checks.append(Check(f"{label}: frames match timestamps, width {width}", "pass" if ok else "fail", shapes))
    checks.append(Check(f"{label}: float32", "pass" if _is_float32(emb) else "fail", f"dtype {emb.dtype}"))
    stamps = torch.as_tensor(ts).double()
    duration_ms = audio.shape[1] / sr * 1000.0
    if stamps.shape[1] < 2:
        checks.append(Check(f"{label}: uniform hop", "warn", f"only {stamps.shape[1]} frame(s)"))
        hop = duration_ms
    else:
        diffs = stamps.diff(dim=1)
        hop = float(diffs.median())
        spread = float((diffs - hop).abs().max())
        ok = hop > 0 and spread <= 1.0
        checks.append(
            Check(
                f"{label}: uniform hop within 1 ms", "pass" if ok else "fail", f"hop {hop:g} ms, off by {spread:g} ms"
            )
        )
        if hop > 50:
            checks.append(Check(f"{label}: hop ≤ 50 ms", "warn", f"hop {hop:g} ms"))
    first, last = float(stamps[:, 0].max()), float(stamps[:, -1].max())
    if first > hop:
        checks.append(Check(f"{label}: frames start at the beginning", "warn", f"first frame at {first:g} ms"))
    if float(stamps[:, -1].min()) < duration_ms - hop:
        checks.append(Check(f"{label}: frames reach the end", "warn", f"last frame at {last:g} of {duration_ms:g} ms"))
    ok = last <= duration_ms + 1e-3
    checks.append(
        Check(f"{label}: last timestamp within the audio", "pass" if ok else "fail", f"{last:g} of {duration_ms:g} ms")
    )
    return checks


def _check_scene(module: ModuleType, model: nn.Module) -> list[Check]:
    """The scene-embedding checks on 4 sounds of seeded white noise lasting 2.74 s."""
    audio = torch.rand(4, round(2.74 * model.sample_rate), generator=torch.Generator().manual_seed(1)) * 2 - 1
    label = "scene embeddings on 4 × 2.74 s"
    try:
        emb = module.get_scene_embeddings(audio, model)
    except Exception as exc:  # report any failure of the module as a failed check
        return [Check(f"{label}: runs", "fail", _first_line(exc))]
    if not hasattr(emb, "ndim"):
        return [Check(f"{label}: returns an array", "fail", f"got {type(emb).__name__}")]
    width = model.scene_embedding_size
    ok = emb.ndim == 2 and emb.shape[0] == 4 and emb.shape[1] == width
    return [
        Check(f"{label}: 2-D, batch kept, width {width}", "pass" if ok else "fail", f"shape {tuple(emb.shape)}"),
        Check(f"{label}: float32", "pass" if _is_float32(emb) else "fail", f"dtype {emb.dtype}"),
    ]


def conformance_check(module_name: str, weights: str = "") -> list[Check]:
    """Run the HEAR conformance check of docs/protocol.md §5 (after hear-validator) on CPU.

    Checks that the module imports and exposes the API, that ``load_model``
    returns a torch module with a HEAR sample rate and integer embedding sizes,
    then the output contract of timestamp embeddings (white noise of 1.07, 1.98
    and 4.0 s, 2 sounds each) and scene embeddings (4 sounds of 2.74 s).  Later
    checks are skipped when an earlier one makes them meaningless.

    Returns:
        The checks in order; the module conforms when none has status ``fail``.
    """
    try:
        module = import_hear_module(module_name)
    except EvalbenchError as exc:
        return [Check("module imports and exposes load_model, get_*_embeddings", "fail", str(exc))]
    checks = [Check("module imports and exposes load_model, get_*_embeddings", "pass")]
    try:
        model = load_hear_model(module, weights)
    except EvalbenchError as exc:
        return [*checks, Check("load_model returns a torch module with valid HEAR attributes", "fail", str(exc))]
    rates = ", ".join(map(str, HEAR_SAMPLE_RATES))
    checks.append(Check("load_model returns a torch module", "pass", type(model).__name__))
    checks.append(Check(f"sample_rate in {{{rates}}}", "pass", str(model.sample_rate)))
    sizes = f"scene {model.scene_embedding_size}, timestamp {model.timestamp_embedding_size}"
    checks.append(Check("embedding sizes are ints", "pass", sizes))
    model.eval()
    with torch.no_grad():
        for seconds in (1.07, 1.98, 4.0):
            checks += _check_timestamps(module, model, seconds)
        checks += _check_scene(module, model)
    return checks
