"""The online monitor: rows it may read, the adapter-equivalent embedding, the kNN rule, its curve and history."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from sklearn.neighbors import KNeighborsClassifier

from evalbench.adapters.byola import ByolaEncoder
from evalbench.adapters.options.byola import ByolaOptions
from evalbench.adapters.pooling import pool_mean_max
from evalbench.data.prepare import open_task_data
from evalbench.embed.standardize import Standardizer
from evalbench.pretrain.byola import ByolA, ByolaRecipeOptions
from evalbench.pretrain.monitor import Monitor, knn_scores, monitor_rows
from evalbench.specs.fields import parse
from evalbench.specs.recipe import OptimizerSpec, TrainSpec
from evalbench.specs.task import load_task
from tests.conftest import Env


def tiny_byola(version: str = "v2", moved: bool = False) -> ByolA:
    """A small BYOL-A method with fitted norm_stats; ``moved``: weights and BatchNorm statistics off their init."""
    options = ByolaRecipeOptions(
        version=version, feature_d=3072 if version == "v2" else 512, hidden=64, projection=16, mixup_bank=8
    )
    torch.manual_seed(0)
    method = ByolA(options, TrainSpec(batch_size=4, optimizer=OptimizerSpec(lr=1e-3)))
    method.prepare(iter([tones(4)]))
    if moved:  # what training does to them, without paying for training steps
        gen = torch.Generator().manual_seed(1)
        with torch.no_grad():
            for name, tensor in method.encoder_network().state_dict().items():
                if tensor.is_floating_point():
                    noise = torch.rand(tensor.shape, generator=gen)
                    tensor.mul_(0.5 + noise) if name.endswith("running_var") else tensor.add_(0.1 * (noise - 0.5))
    return method


def tones(n: int, seed: int = 0, samples: int = 15200) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    t = torch.arange(samples) / 16000
    freqs = 200 + 1800 * torch.rand(n, 1, generator=gen)
    return 0.3 * torch.sin(2 * math.pi * freqs * t) + 0.05 * torch.randn(n, samples, generator=gen)


def make_monitor(env: Env, name: str, tmp_path: Path, **kwargs) -> Monitor:
    task = load_task(name, env.tasks)
    return Monitor(task, env.data, env.cache / "audio", tmp_path / "out", **kwargs)


def test_the_monitor_never_reads_test_rows(env: Env, tmp_path: Path) -> None:
    pitch = make_monitor(env, "synth_pitch", tmp_path)  # no sample rate: rows only, nothing decoded
    split = pitch.data.split
    assert (split[pitch.memory_rows] == "train").all() and (split[pitch.query_rows] == "valid").all()
    assert len(pitch.memory_rows) == (split == "train").sum() and len(pitch.query_rows) == (split == "valid").sum()
    timbre = make_monitor(env, "synth_timbre", tmp_path)
    fold, groups = timbre.data.fold, timbre.data.groups
    assert not np.isin(np.r_[timbre.memory_rows, timbre.query_rows], np.flatnonzero(fold == 1)).any()
    assert set(fold[timbre.memory_rows]) == {2, 3, 4} and set(fold[timbre.query_rows]) == {5}
    assert not set(groups[timbre.memory_rows]) & set(groups[timbre.query_rows])
    assert "fold 1 is never used" in timbre.description
    capped = make_monitor(env, "synth_pitch", tmp_path, max_clips=7)
    again = make_monitor(env, "synth_pitch", tmp_path, max_clips=7)
    assert len(capped.memory_rows) == len(capped.query_rows) == 7
    assert np.array_equal(capped.memory_rows, again.memory_rows)  # seeded subsample
    assert set(capped.memory_rows) <= set(pitch.memory_rows) and set(capped.query_rows) <= set(pitch.query_rows)


def test_a_two_fold_task_draws_grouped_queries_from_fold_2(env: Env) -> None:
    data = open_task_data(load_task("synth_timbre", env.tasks), env.data)
    task = dataclasses.replace(data.task, splits=dataclasses.replace(data.task.splits, folds=2))
    two = dataclasses.replace(data, task=task, fold=np.where(data.fold == 1, 1, 2))
    memory, queries, _ = monitor_rows(two, 2000)
    assert (two.fold[memory] == 2).all() and (two.fold[queries] == 2).all() and len(queries) and len(memory)
    assert not set(two.groups[memory]) & set(two.groups[queries])


@pytest.mark.parametrize("version", ["v1", "v2"])
def test_embed_for_monitor_equals_the_registered_adapter(version: str) -> None:
    method = tiny_byola(version, moved=True).eval()
    wav = tones(4, 7, samples=16000)
    lengths = torch.tensor([16000, 9000, 2500, 300])  # the last two are shorter than the network's 2**blocks frames
    wav = wav * (torch.arange(16000)[None, :] < lengths[:, None])
    enc = ByolaEncoder(parse(ByolaOptions, method.encoder_options(), "test"))
    enc.net.load_state_dict(method.encoder_network().state_dict())
    mean, std = method.norm_stats.tolist()
    enc.load_fitted_state({"mean": mean, "std": std})
    with torch.inference_mode():
        ours = method.embed_for_monitor(wav, lengths)
        theirs = pool_mean_max(enc.encode(wav, lengths))
    # Same arithmetic on two code paths; a stated tolerance rather than bit equality.
    torch.testing.assert_close(ours, theirs, rtol=0, atol=1e-5)


def sklearn_accuracy(memory: np.ndarray, y_mem: np.ndarray, queries: np.ndarray, y_q: np.ndarray, k: int) -> float:
    knn = KNeighborsClassifier(n_neighbors=k, metric="cosine", algorithm="brute").fit(memory, y_mem)
    return float(knn.score(queries, y_q))


def test_knn_matches_scikit_learn_without_ties_and_breaks_ties_by_similarity() -> None:
    rng = np.random.default_rng(0)
    y_mem, y_q = rng.integers(0, 2, 60), rng.integers(0, 2, 40)
    centres = rng.normal(size=(2, 8))
    memory, queries = centres[y_mem] + 1.5 * rng.normal(size=(60, 8)), centres[y_q] + 1.5 * rng.normal(size=(40, 8))
    for k in (1, 5, 9):  # two classes and an odd k: no vote ties
        ours = float((knn_scores(memory, y_mem, queries, k, "single", 2).argmax(1) == y_q).mean())
        assert ours == sklearn_accuracy(memory, y_mem, queries, y_q, k)
    # A vote tie: one neighbour of class 0 (cos 0.6), one of class 1 (cos 0.9).  scikit-learn takes the lower
    # class index; the monitor takes the class whose voters are more similar.
    memory = np.array([[0.6, 0.8], [0.9, math.sqrt(1 - 0.81)], [-1.0, 0.0]])
    scores = knn_scores(memory, np.array([0, 1, 0]), np.array([[1.0, 0.0]]), 2, "single", 2)
    assert scores.argmax() == 1 and sklearn_accuracy(memory, np.array([0, 1, 0]), np.array([[1.0, 0.0]]), [1], 2) == 0
    multi = knn_scores(memory, np.array([[1, 0], [1, 1], [0, 1]]), np.array([[1.0, 0.0]]), 2, "multilabel", 2)
    np.testing.assert_allclose(multi, [[1.0, 0.5]])  # the mean of the two nearest rows' multi-hot labels


def test_monitor_score_equals_scikit_learn_on_its_own_embeddings(env: Env, tmp_path: Path) -> None:
    method = tiny_byola()
    monitor = make_monitor(env, "synth_pitch", tmp_path, k=1, max_clips=24, sample_rate=method.sample_rate)
    emb = monitor.embed(method)
    n = len(monitor.memory_rows)
    scaler = Standardizer().fit(emb[:n])
    y = monitor.data.y
    expected = sklearn_accuracy(
        scaler.transform(emb[:n]), y[monitor.memory_rows], scaler.transform(emb[n:]), y[monitor.query_rows], 1
    )
    assert monitor.score(emb) == pytest.approx(expected, abs=1e-12)


def test_curve_files_history_state_and_no_side_effects(env: Env, tmp_path: Path) -> None:
    method = tiny_byola()
    method.train()
    method.target.eval()  # a mixed mode must come back as it was
    monitor = make_monitor(env, "synth_pitch", tmp_path, max_clips=8, batch_size=5, sample_rate=16000)
    torch_rng, np_rng = torch.get_rng_state(), np.random.get_state()[1].copy()
    before = {k: v.clone() for k, v in method.state_dict().items()}
    first = monitor(0, method)
    assert set(first) == {"step", "accuracy", "seconds"} and first["step"] == 0 and 0 <= first["accuracy"] <= 1
    monitor(2, method)
    again = monitor(2, method)  # re-scoring a step replaces its row
    assert torch.equal(torch.get_rng_state(), torch_rng) and np.array_equal(np.random.get_state()[1], np_rng)
    assert all(torch.equal(before[k], v) for k, v in method.state_dict().items())  # BatchNorm stats untouched
    assert method.training and method.online.training and not method.target.training
    assert again["accuracy"] == first["accuracy"]  # same weights, same score
    lines = (tmp_path / "out" / "monitor.csv").read_text().splitlines()
    assert lines[0] == "step,accuracy,seconds" and [int(row.split(",")[0]) for row in lines[1:]] == [0, 2]
    assert (tmp_path / "out" / "monitor.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    restored = make_monitor(env, "synth_pitch", tmp_path, max_clips=8)
    restored.load_state([*monitor.state(), {"task": "synth_timbre", "step": 4, "accuracy": 0.5, "seconds": 1.0}])
    assert restored.history == monitor.history and restored.has(2) and not restored.has(4)
    assert restored.last() == again
    restored.save()
    assert (tmp_path / "out" / "monitor.csv").read_text().splitlines() == lines


def test_supervised_embed_for_monitor_is_the_adapter_on_the_live_network() -> None:
    from evalbench.adapters.options.supervised import SupervisedOptions
    from evalbench.adapters.pooling import pool_mean
    from evalbench.adapters.supervised import SupervisedEncoder
    from evalbench.pretrain.supervised import Supervised, SupervisedRecipeOptions

    torch.manual_seed(0)
    method = Supervised(SupervisedRecipeOptions(arch="vgg", n_classes=5, unit_seconds=1.0), TrainSpec(batch_size=4))
    keys = list(method.state_dict())
    lengths = torch.tensor([44100, 30000, 12000])
    wav = 0.1 * torch.randn(3, 44100, generator=torch.Generator().manual_seed(0))
    wav = wav * (torch.arange(44100)[None, :] < lengths[:, None])
    enc = SupervisedEncoder(SupervisedOptions(arch="vgg", n_classes=5))
    enc.net.load_state_dict(method.encoder_network().state_dict())
    with torch.inference_mode():
        ours = method.eval().embed_for_monitor(wav, lengths)
        torch.testing.assert_close(ours, pool_mean(enc.encode(wav, lengths)), rtol=0, atol=1e-5)
    assert list(method.state_dict()) == keys  # the adapter view is not a submodule: checkpoints are unchanged
