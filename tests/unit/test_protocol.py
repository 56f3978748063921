"""The protocol: standardisation on train only, sealed test labels, summaries."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from evalbench import protocol
from evalbench.data.prepare import open_task_data
from evalbench.data.splits import rotations
from evalbench.embed.standardize import Standardizer
from evalbench.protocol import RunScore, SealedLabels, evaluate_probe, summarize
from evalbench.specs.task import load_task


def test_standardizer_uses_fit_statistics() -> None:
    train = np.array([[0.0, 1.0], [2.0, 1.0]])
    s = Standardizer().fit(train)
    np.testing.assert_allclose(s.transform(np.array([[1.0, 5.0], [3.0, 1.0]])), [[0.0, 4.0], [2.0, 0.0]])


def test_standardization_is_fitted_on_training_rows_only(
    tiny_tasks: Path, tiny_data: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = open_task_data(load_task("synth_timbre", tiny_tasks), tiny_data)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((data.n, 6)).astype(np.float32)
    x[data.fold == 1] += 1000.0  # fold 1 is far away: it must never enter the statistics while it is test
    fitted: list[np.ndarray] = []

    class Spy(Standardizer):
        def fit(self, a, rows=None):  # the protocol passes the whole matrix and the rows to fit on
            fitted.append(np.asarray(a if rows is None else a[rows]))
            return super().fit(a, rows)

    monkeypatch.setattr(protocol, "Standardizer", Spy)
    evaluate_probe(data, x, "linear", seeds=[42], probe_options={"max_epochs": 2})
    rots = rotations(data, 42)
    assert len(fitted) == len(rots) == 5
    for rot, arr in zip(rots, fitted, strict=True):
        np.testing.assert_array_equal(arr, x[rot.train])  # exactly the training rows, not valid or test
    assert fitted[0].max() < 100  # the test fold's shifted rows were not used


def test_sealed_labels_can_be_read_once() -> None:
    sealed = SealedLabels(np.array([0, 1]), ["accuracy"], "single")
    assert sealed.score(np.array([[0.9, 0.1], [0.2, 0.8]])) == {"accuracy": 1.0}
    with pytest.raises(RuntimeError, match="already used"):
        sealed.score(np.array([[0.9, 0.1], [0.2, 0.8]]))


def test_summary_std_is_over_seed_means() -> None:
    runs = [
        RunScore(seed=s, fold=f, test={"accuracy": v}, valid={"accuracy": v}, chosen={}, n={}, valid_sha256="")
        for s, f, v in [(1, 1, 0.5), (1, 2, 0.7), (2, 1, 0.6), (2, 2, 1.0)]
    ]
    out = summarize(runs, ["accuracy"])["accuracy"]
    assert out["mean"] == pytest.approx(0.7)
    assert out["seed_means"] == pytest.approx([0.6, 0.8])
    assert out["std"] == pytest.approx(np.std([0.6, 0.8], ddof=1))
    assert out["fold_means"] == pytest.approx([0.55, 0.85])
    assert out["fold_std"] == pytest.approx(np.std([0.55, 0.85], ddof=1))


def test_informative_embeddings_beat_noise(tiny_tasks: Path, tiny_data: Path) -> None:
    data = open_task_data(load_task("synth_pitch", tiny_tasks), tiny_data)
    rng = np.random.default_rng(0)
    noise = rng.standard_normal((data.n, 8)).astype(np.float32)
    onehot = np.eye(12, dtype=np.float32)[data.y] + 0.1 * rng.standard_normal((data.n, 12)).astype(np.float32)
    good = summarize(evaluate_probe(data, onehot, "linear", [42]), ["accuracy"])["accuracy"]["mean"]
    bad = summarize(evaluate_probe(data, noise, "linear", [42]), ["accuracy"])["accuracy"]["mean"]
    assert good == 1.0 and bad < 0.35
