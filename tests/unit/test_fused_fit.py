"""The fused fit + embedding pass (evalbench.embed.fit) against the separate fit it replaces.

Tolerances.  The fused pass fits BYOL-A's scalar log-mel statistics from batched log-mels, the separate fit from
each clip's log-mel computed alone: the two differ only in float32 STFT rounding between batch shapes and float64
summation order, so the fitted mean/std agree to rtol 1e-6.  Embeddings computed with the two (near-identical)
states agree to atol 1e-5, rtol 1e-4, the bench's tolerance for float32 pipelines.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch

from evalbench.data.prepare import open_task_data
from evalbench.data.task_data import TaskData
from evalbench.embed import extract, fit
from evalbench.embed.cache import EmbeddingCache
from evalbench.embed.encoder import LoadedEncoder, load_encoder_model
from evalbench.embed.extract import embed_views
from evalbench.embed.fit import fit_encoder
from evalbench.embed.loader import ClipDataset
from evalbench.specs.encoder import load_encoder
from evalbench.specs.task import load_task
from tests.conftest import ENCODERS

STATE_RTOL = 1e-6
ATOL, RTOL = 1e-5, 1e-4
SMALL_VIT = {"num_layers": 2, "num_heads": 2, "hidden_dim": 64, "mlp_dim": 128}  # msn-random, shrunk for speed


def encoder(name: str) -> LoadedEncoder:
    """``byola`` (the byola-random spec) or ``msn`` (msn-random with a small ViT), random weights, CPU."""
    if name == "byola":
        return load_encoder_model(load_encoder("byola-random", ENCODERS), torch.device("cpu"))
    spec = load_encoder("msn-random", ENCODERS)
    return load_encoder_model(dataclasses.replace(spec, options={**spec.options, **SMALL_VIT}), torch.device("cpu"))


def task(name: str, tiny_tasks: Path, tiny_data: Path) -> TaskData:
    return open_task_data(load_task(name, tiny_tasks), tiny_data)


def separate(enc: LoadedEncoder, data: TaskData, root: Path) -> tuple[np.ndarray, dict]:
    """Today's path, forced: a fit pass of its own, whose cached state the embedding pass then finds."""
    cache = EmbeddingCache(root)
    fit_encoder(enc, data, cache, 16, 0)
    x, _, _ = embed_views(enc, data, cache, 16, 0)
    return x, enc.model.fitted_state()


def fused(enc: LoadedEncoder, data: TaskData, root: Path) -> tuple[np.ndarray, dict]:
    x, _, stats = embed_views(enc, data, EmbeddingCache(root), 16, 0)
    assert stats.parts_cached == 0 and stats.clips_computed == data.n
    return x, enc.model.fitted_state()


def assert_same(a: tuple[np.ndarray, dict], b: tuple[np.ndarray, dict]) -> None:
    assert a[1].keys() == b[1].keys() == {"mean", "std"}
    for k in a[1]:
        assert a[1][k] == pytest.approx(b[1][k], rel=STATE_RTOL)
    np.testing.assert_allclose(a[0], b[0], atol=ATOL, rtol=RTOL)


@pytest.fixture
def reads(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Rows decoded through :class:`ClipDataset` (in-process: tests run with 0 workers)."""
    rows: list[int] = []
    original = ClipDataset.__getitem__

    def counted(self: ClipDataset, i: int) -> tuple[torch.Tensor, int, str]:
        rows.append(int(self.rows[i]))
        return original(self, i)

    monkeypatch.setattr(ClipDataset, "__getitem__", counted)
    return rows


def test_the_front_end_split_is_encode_and_batched_fit_is_per_clip_fit() -> None:
    gen = torch.Generator().manual_seed(0)
    lengths = torch.tensor([16000, 9000, 700])  # the last is shorter than one FFT window
    wav = 0.1 * torch.randn(3, 16000, generator=gen) * (torch.arange(16000)[None, :] < lengths[:, None])
    for name in ("byola", "msn"):
        model = encoder(name).model
        with torch.inference_mode():
            model.fit(w[:n] for w, n in zip(wav, lengths.tolist(), strict=True))
            alone = model.fitted_state()
            model.begin_fit()
            model.fit_features(model.features(wav[:2], lengths[:2]), lengths[:2])
            model.fit_features(model.features(wav[2:], lengths[2:]), lengths[2:])
            model.finish_fit()
            assert model.fitted_state() == pytest.approx(alone, rel=STATE_RTOL)
            split = model.encode_features(model.features(wav, lengths), lengths)
            whole = model.encode(wav, lengths)
        assert torch.equal(split.embeddings, whole.embeddings) and torch.equal(split.mask, whole.mask)


@pytest.mark.parametrize("name", ["byola", "msn"])
@pytest.mark.parametrize("task_name", ["synth_pitch", "synth_timbre"])  # fixed split, 5-fold
def test_fused_equals_separate(name: str, task_name: str, tiny_tasks: Path, tiny_data: Path, tmp_path: Path) -> None:
    data = task(task_name, tiny_tasks, tiny_data)
    enc = encoder(name)
    assert_same(fused(enc, data, tmp_path / "fused"), separate(enc, data, tmp_path / "separate"))


def test_each_clip_is_decoded_once_and_a_warm_rerun_reads_nothing(
    reads: list[int], tiny_tasks: Path, tiny_data: Path, tmp_path: Path
) -> None:
    data = task("synth_pitch", tiny_tasks, tiny_data)
    enc = encoder("byola")
    fused(enc, data, tmp_path / "fused")
    assert sorted(reads) == list(range(data.n))  # not n + the 60 % training clips again
    reads.clear()
    separate(enc, data, tmp_path / "separate")
    assert len(reads) == data.n + int((data.split == "train").sum())  # the path it replaces
    reads.clear()
    _, _, stats = embed_views(enc, data, EmbeddingCache(tmp_path / "fused"), 16, 0)
    assert not reads and (stats.parts_cached, stats.parts_computed) == (3, 0)


def test_a_tiny_feature_budget_gives_the_same_result_in_bounded_memory(
    reads: list[int], tiny_tasks: Path, tiny_data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = task("synth_timbre", tiny_tasks, tiny_data)  # 5 folds, every clip a fit clip
    enc = encoder("byola")
    reference = fused(enc, data, tmp_path / "unbounded")
    per_clip = 64 * 101 * 4  # a 1 s clip's log-mel, float32
    budget = int(1.5 * len(data.parts()["fold1"]) * per_clip)  # one fold and a half
    monkeypatch.setattr(fit, "FEATURE_BUDGET_BYTES", budget)
    kept, recomputed = [], []
    encode_kept, embed_rows = fit._FusedPass.encode, extract.embed_rows

    def spy_kept(self, part, batches, mask_padding):
        kept.append(batches.nbytes)
        return encode_kept(self, part, batches, mask_padding)

    def spy_rows(*args, **kwargs):
        recomputed.append(len(args[2]))
        return embed_rows(*args, **kwargs)

    monkeypatch.setattr(fit._FusedPass, "encode", spy_kept)
    monkeypatch.setattr(extract, "embed_rows", spy_rows)
    reads.clear()
    assert_same(fused(enc, data, tmp_path / "bounded"), reference)
    assert len(kept) == 1 and 0 < sum(kept) <= budget  # fold 1 kept; fold 2 overflowed, later folds never kept
    assert len(recomputed) == 4 and sum(recomputed) + len(data.parts()["fold1"]) == data.n
    assert len(reads) == data.n + sum(recomputed)  # the dropped folds are read again, once


def test_a_cached_part_holding_fit_rows_falls_back_to_the_separate_fit(
    reads: list[int], tiny_tasks: Path, tiny_data: Path, tmp_path: Path
) -> None:
    data = task("synth_pitch", tiny_tasks, tiny_data)
    enc = encoder("byola")
    first = fused(enc, data, tmp_path)
    for state in (tmp_path / enc.spec.name / data.task.name).glob("fit.*.json"):
        state.unlink()  # the embeddings stay cached, the state is gone
    reads.clear()
    x, _, stats = embed_views(enc, data, EmbeddingCache(tmp_path), 16, 0)
    assert sorted(reads) == sorted(np.flatnonzero(data.split == "train").tolist())  # the fit pass alone
    assert stats.parts_cached == 3
    assert_same((x, enc.model.fitted_state()), first)


def test_reduced_precision_keeps_the_separate_fit(
    reads: list[int], tiny_tasks: Path, tiny_data: Path, tmp_path: Path
) -> None:
    data = task("synth_pitch", tiny_tasks, tiny_data)
    enc = encoder("byola")
    enc.precision = "bf16"  # the normal path's front end runs under autocast, the fit must not
    parts = list(data.parts())
    assert fit.fused_fit(enc, data, EmbeddingCache(tmp_path), 16, 0, [dict.fromkeys(parts, "start")], True) == {}
    assert sorted(reads) == sorted(np.flatnonzero(data.split == "train").tolist())


def test_the_fused_pass_reports_its_stages(tiny_tasks: Path, tiny_data: Path, tmp_path: Path) -> None:
    data = task("synth_timbre", tiny_tasks, tiny_data)
    enc, timings = encoder("byola"), {}
    views = [dict.fromkeys(data.parts(), data.task.audio.crop)]
    done = fit.fused_fit(enc, data, EmbeddingCache(tmp_path), 16, 0, views, True, None, timings)
    assert set(done) == {(part, "start") for part in data.parts()}
    assert {"decode", "load_wait", "encode", "fit", "pool", "cache_write"} <= set(timings)
    assert all(v >= 0 for v in timings.values())


def test_kept_features_wait_on_disk_and_leave_nothing_behind(
    tiny_tasks: Path, tiny_data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = task("synth_pitch", tiny_tasks, tiny_data)
    enc = encoder("byola")
    spilled = []
    append = fit._Spill.append

    def spy(self, feats, lengths):
        append(self, feats, lengths)
        spilled.append(self.file.tell())  # the bytes went to the file, batch after batch

    monkeypatch.setattr(fit._Spill, "append", spy)
    fused(enc, data, tmp_path)
    per_clip = 64 * 101 * 4  # a 1 s clip's log-mel, float32
    assert spilled and spilled[-1] >= per_clip * int((data.split == "train").sum())
    assert not list((tmp_path / "tmp").iterdir())  # anonymous files: nothing left once the pass is done
