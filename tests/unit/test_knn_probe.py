"""The kNN probe: scikit-learn's cosine kNN numbers, k chosen on validation, exact tie rule, blind to test labels."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.metrics import r2_score
from sklearn.neighbors import KNeighborsClassifier, KNeighborsRegressor, NearestNeighbors

from evalbench import metrics as M
from evalbench.data.prepare import open_task_data
from evalbench.data.task_data import TaskData
from evalbench.presets import class_defaults
from evalbench.probes import knn as K
from evalbench.probes.knn import KNNProbe, nearest_neighbours, neighbour_scores, neighbour_weights
from evalbench.probes.linear import mean_loss
from evalbench.protocol import evaluate_probe
from evalbench.specs.task import load_task
from tests.unit.test_selection_blind import (
    CASES,
    SEEDS,
    compared,
    load_case,
    poison,
    poisoned_rows,
)


def blobs(seed: int, n: int, c: int, d: int = 24, spread: float = 2.0) -> tuple[np.ndarray, np.ndarray]:
    """``n`` float32 rows around ``c`` random centres (continuous: no two similarities tie) and their labels."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, c, n)
    centres = rng.standard_normal((c, d))
    return (centres[y] + spread * rng.standard_normal((n, d))).astype(np.float32), y


def r2(y: np.ndarray, prediction: np.ndarray) -> float:
    """Coefficient of determination, computed by scikit-learn (the probe's own metric is not under test)."""
    return float(r2_score(y, prediction))


@pytest.mark.parametrize("weights", ["uniform", "distance"])
@pytest.mark.parametrize("c", [2, 5])
def test_scores_equal_scikit_learn_cosine_knn(weights: str, c: int) -> None:
    x, y = blobs(0, 300, c)
    xv, yv = blobs(1, 60, c)
    queries, _ = blobs(2, 200, c)
    label_type = "binary" if c == 2 else "single"
    for k in (1, 4, 15, 300):
        probe = KNNProbe(n_classes=c, label_type=label_type, ks=(k,), weights=weights).fit(x, y, xv, yv)
        reference = KNeighborsClassifier(n_neighbors=k, metric="cosine", algorithm="brute", weights=weights)
        expected = reference.fit(x, y).predict_proba(queries)
        np.testing.assert_allclose(probe.predict_proba(queries), expected, rtol=0, atol=1e-6, err_msg=f"k={k}")
        np.testing.assert_array_equal(probe.predict(queries), reference.predict(queries))


@pytest.mark.parametrize("weights", ["uniform", "distance"])
def test_regression_scores_equal_scikit_learn(weights: str) -> None:
    x, _ = blobs(3, 200, 3)
    queries, _ = blobs(4, 50, 3)
    target = np.random.default_rng(5).standard_normal(200)
    similarity, index = nearest_neighbours(x, queries, 20)
    w = neighbour_weights(similarity, weights)
    for k, prediction in neighbour_scores(target, index, w, [1, 7, 20], "regression", 0):
        reference = KNeighborsRegressor(n_neighbors=k, metric="cosine", algorithm="brute", weights=weights)
        assert prediction.shape == (50,)
        np.testing.assert_allclose(prediction, reference.fit(x, target).predict(queries), rtol=0, atol=1e-6)


def test_regression_probe_chooses_k_by_r2() -> None:
    if "r2" not in M.HIGHER_IS_BETTER:
        pytest.skip("evalbench.metrics does not know 'r2' yet (the regression metrics land separately)")
    rng = np.random.default_rng(6)
    x = rng.standard_normal((400, 8)).astype(np.float32)
    xv = rng.standard_normal((100, 8)).astype(np.float32)
    truth = np.sin(3 * x[:, 0] / np.linalg.norm(x, axis=1))
    target = truth + 0.5 * rng.standard_normal(400)  # noisy: 1-NN copies the noise
    valid_target = np.sin(3 * xv[:, 0] / np.linalg.norm(xv, axis=1))
    probe = KNNProbe(n_classes=0, label_type="regression", metric="r2").fit(x, target, xv, valid_target)
    expected = {
        k: r2(valid_target, KNeighborsRegressor(n_neighbors=k, metric="cosine", algorithm="brute").fit(x, target)
              .predict(xv))
        for k in K.DEFAULT_KS
    }  # fmt: skip
    assert probe.chosen_["k"] == max(expected, key=lambda k: expected[k]) > 1
    for row in probe.chosen_["grid"]:
        assert row["valid"] == pytest.approx(expected[row["k"]], abs=1e-6)
    assert probe.predict(xv).shape == (100,)
    with pytest.raises(ValueError, match="use predict"):
        probe.predict_proba(xv)


def test_k_is_chosen_on_validation_where_1nn_copies_label_noise() -> None:
    # Two classes along opposite directions; every fourth training label is flipped, validation labels are clean.
    rng = np.random.default_rng(7)
    y = np.arange(200) % 2
    x = (np.where(y[:, None] == 1, 1.0, -1.0) * np.eye(6)[0] + 0.4 * rng.standard_normal((200, 6))).astype(np.float32)
    noisy = np.where(np.arange(200) % 4 == 0, 1 - y, y)
    yv = np.arange(80) % 2
    xv = (np.where(yv[:, None] == 1, 1.0, -1.0) * np.eye(6)[0] + 0.4 * rng.standard_normal((80, 6))).astype(np.float32)
    probe = KNNProbe(n_classes=2, label_type="binary").fit(x, noisy, xv, yv)
    expected = []
    for k in K.DEFAULT_KS:
        proba = KNeighborsClassifier(n_neighbors=k, metric="cosine", algorithm="brute").fit(x, noisy).predict_proba(xv)
        expected.append((-float(np.mean(proba.argmax(1) == yv)), mean_loss(yv, proba, "binary"), k))
    assert [(-g["valid"], g["k"]) for g in probe.chosen_["grid"]] == [(a, k) for a, _, k in expected]
    for g, (_, loss, _) in zip(probe.chosen_["grid"], expected, strict=True):
        assert g["valid_loss"] == pytest.approx(loss, rel=1e-9)
    best = min(expected)
    assert probe.k_ == probe.chosen_["k"] == best[2] > 1
    assert probe.valid_score_ == -best[0] > probe.chosen_["grid"][0]["valid"] + 0.1  # 1-NN is clearly worse
    assert probe.chosen_["weights"] == "uniform" and json.loads(json.dumps(probe.chosen_)) == probe.chosen_


def test_metric_ties_go_to_lower_loss_then_smaller_k() -> None:
    # Training rows at angles 0, 0.1, 0.2, ... rad, so the query (angle -0.05) sees them in row order.  Every
    # k votes class 1 (accuracy 1 throughout); the vote fractions, hence the losses, differ.
    labels = np.array([1, 0, 1, 1, 1, 0])
    angles = 0.1 * np.arange(len(labels))
    x = np.stack([np.cos(angles), np.sin(angles)], axis=1).astype(np.float32)
    q, yq = np.array([[np.cos(-0.05), np.sin(-0.05)]], np.float32), np.array([1])
    fit = KNNProbe(n_classes=2, label_type="binary", ks=(3, 5, 6)).fit(x, labels, q, yq)
    assert [g["valid"] for g in fit.chosen_["grid"]] == [1.0, 1.0, 1.0]
    assert fit.k_ == 5  # class-1 fraction 4/5 beats 2/3 (k = 3) and 4/6 (k = 6): the lowest loss wins
    fit = KNNProbe(n_classes=2, label_type="binary", ks=(6, 3)).fit(x, labels, q, yq)
    assert fit.chosen_["grid"][0]["valid_loss"] == fit.chosen_["grid"][1]["valid_loss"]  # 2/3 both ways
    assert fit.k_ == 3  # equal loss: the smaller k


def test_grid_is_clipped_to_the_training_rows_and_searched_once(monkeypatch: pytest.MonkeyPatch) -> None:
    x, y = blobs(8, 12, 3)
    calls = []
    original = K.nearest_neighbours

    def counting(*args, **kwargs):
        calls.append(args[2])
        return original(*args, **kwargs)

    monkeypatch.setattr(K, "nearest_neighbours", counting)
    probe = KNNProbe(n_classes=3).fit(x, y, x, y)
    assert [g["k"] for g in probe.chosen_["grid"]] == [1, 3, 5, 10, 12]  # 20 and 50 clipped to 12, once
    assert calls == [12]  # one search at the largest k serves the grid


def test_equal_similarities_go_to_the_lower_training_row() -> None:
    base, _ = blobs(9, 150, 4)
    x = np.concatenate([base, base])  # every row twice: each neighbour ties exactly with its copy
    queries, _ = blobs(10, 300, 4)
    similarity, index = nearest_neighbours(x, queries, 10)
    np.testing.assert_array_equal(similarity[:, 0::2], similarity[:, 1::2])
    assert (index[:, 0::2] < 150).all()
    np.testing.assert_array_equal(index[:, 1::2], index[:, 0::2] + 150)
    odd = nearest_neighbours(x, queries, 9)[1]  # the 9th place splits every tied pair: the original makes the cut
    np.testing.assert_array_equal(odd, index[:, :9])
    # A tie straddling the k-th place: three copies of the query at rows 1, 3, 4; k=2 takes rows 1 and 3.
    q = np.array([[1.0, 2.0]], np.float32)
    rows = np.array([[-1.0, 0.0], [1.0, 2.0], [0.0, 1.0], [2.0, 4.0], [1.0, 2.0]], np.float32)
    assert nearest_neighbours(rows, q, 2)[1].tolist() == [[1, 3]]
    probe = KNNProbe(n_classes=3, ks=(1,)).fit(rows, np.array([0, 2, 0, 1, 1]), q, np.array([2]))
    assert probe.predict(q).tolist() == [2]  # the lower of the tied rows votes


def test_chunked_search_equals_unchunked(monkeypatch: pytest.MonkeyPatch) -> None:
    base, y = blobs(11, 120, 3)
    x, y = np.concatenate([base, base[:40]]), np.concatenate([y, y[:40]])
    queries, _ = blobs(12, 97, 3)
    whole_sim, whole_index = nearest_neighbours(x, queries, 25, chunk_rows=len(queries))
    for rows in (1, 7, 50):
        sim, index = nearest_neighbours(x, queries, 25, chunk_rows=rows)
        np.testing.assert_array_equal(index, whole_index, err_msg=f"chunk_rows={rows}")
        np.testing.assert_allclose(sim, whole_sim, rtol=0, atol=1e-6)
    whole = KNNProbe(n_classes=3, weights="distance").fit(x, y, queries[:30], y[:30])
    monkeypatch.setattr(K, "CHUNK_BYTES", 3 * len(x) * 4)  # three query rows per block
    chunked = KNNProbe(n_classes=3, weights="distance").fit(x, y, queries[:30], y[:30])
    # Chunked and whole similarities are float32 matrix products of different shapes: they agree to
    # rounding (1e-6), not bit for bit, so the choice must match exactly and the losses within 1e-6.
    grid, whole_grid = chunked.chosen_.pop("grid"), whole.chosen_.pop("grid")
    assert chunked.chosen_ == whole.chosen_
    assert [(g["k"], g["valid"]) for g in grid] == [(g["k"], g["valid"]) for g in whole_grid]
    np.testing.assert_allclose([g["valid_loss"] for g in grid], [g["valid_loss"] for g in whole_grid], rtol=1e-6)
    np.testing.assert_allclose(chunked.predict_proba(queries), whole.predict_proba(queries), rtol=0, atol=1e-6)


@pytest.mark.parametrize("weights", ["uniform", "distance"])
def test_multilabel_scores_are_the_neighbours_mean_multi_hot(weights: str) -> None:
    x, _ = blobs(13, 150, 3)
    rng = np.random.default_rng(14)
    y = (rng.random((150, 5)) < 0.3).astype(np.float64)
    y[:, 0] = x[:, 0] > 0  # one learnable tag
    queries, _ = blobs(15, 40, 3)
    yq = (rng.random((40, 5)) < 0.3).astype(np.float64)
    yq[:, 0] = queries[:, 0] > 0
    probe = KNNProbe(n_classes=5, label_type="multilabel", metric="map", weights=weights).fit(x, y, queries, yq)
    distance, index = (
        NearestNeighbors(n_neighbors=probe.k_, metric="cosine", algorithm="brute").fit(x).kneighbors(queries)
    )
    w = np.ones_like(distance) if weights == "uniform" else 1.0 / distance
    expected = np.einsum("nk,nkc->nc", w, y[index]) / w.sum(1, keepdims=True)
    scores = probe.predict_proba(queries)
    assert scores.shape == (40, 5)
    np.testing.assert_allclose(scores, expected, rtol=0, atol=1e-6)
    np.testing.assert_array_equal(probe.predict(queries), (scores >= 0.5).astype(np.int64))
    assert probe.valid_score_ == pytest.approx(M.compute(["map"], yq, scores, "multilabel")["map"], abs=1e-12)


def test_a_query_at_distance_zero_takes_all_the_weight() -> None:
    x = np.array([[1.0, 0.0], [2.0, 0.0], [0.0, 1.0], [0.6, 0.8]], np.float32)  # rows 0 and 1: same direction
    probe = KNNProbe(n_classes=3, ks=(3,), weights="distance").fit(x, np.array([0, 1, 2, 2]), x[:1], np.array([0]))
    np.testing.assert_array_equal(probe.predict_proba(x[:1]), [[0.5, 0.5, 0.0]])


def test_estimator_parameters_clone_and_defaults() -> None:
    probe = KNNProbe(n_classes=4, label_type="single", metric="roc_auc", ks=(2, 4), weights="distance", device="cpu")
    params = probe.get_params()
    assert params == {
        "n_classes": 4, "label_type": "single", "metric": "roc_auc", "ks": (2, 4), "weights": "distance",
        "random_state": 0, "device": "cpu",
    }  # fmt: skip
    copy = clone(probe)
    assert copy is not probe and copy.get_params() == params
    assert probe.set_params(ks=(1,), weights="uniform") is probe and probe.get_params()["ks"] == (1,)
    assert KNNProbe(n_classes=2).set_params(**params).get_params() == params
    assert probe.deterministic and KNNProbe(n_classes=2, random_state=5).deterministic
    x, y = blobs(16, 40, 4)
    fitted = KNNProbe(n_classes=4).fit(x, y, x, y)
    assert not hasattr(clone(fitted), "k_")  # clone copies hyperparameters, not the fitted state
    defaults = class_defaults("knn")
    assert defaults["weights"] == "uniform" and list(defaults["ks"]) == [1, 3, 5, 10, 20, 50]
    json.dumps(defaults)


@pytest.mark.parametrize(
    ("options", "message"), [({"weights": "gaussian"}, "weights"), ({"ks": (0, 3)}, "ks"), ({"ks": ()}, "ks")]
)
def test_bad_options_are_rejected_at_fit(options: dict, message: str) -> None:
    x, y = blobs(17, 20, 2)
    probe = KNNProbe(n_classes=2, **options)  # constructing stores the values; fit checks them
    with pytest.raises(ValueError, match=message):
        probe.fit(x, y, x, y)


@pytest.fixture(scope="module", params=CASES)
def task_case(request: pytest.FixtureRequest, tiny_tasks: Path, tiny_data: Path) -> tuple[TaskData, np.ndarray]:
    """Each task of the selection-blindness test, with the same informative embeddings."""
    return load_case(request.param, tiny_tasks, tiny_data)


def test_selection_never_reads_test_labels(task_case: tuple[TaskData, np.ndarray]) -> None:
    data, x = task_case
    rows = poisoned_rows(data)
    bad = poison(data, rows)
    clean = compared(evaluate_probe(data, x, "knn", SEEDS), data)
    dirty = compared(evaluate_probe(bad, x, "knn", SEEDS), bad)
    assert len(clean) == len(dirty) == len(SEEDS)
    primary = data.task.primary_metric
    for a, b in zip(clean, dirty, strict=True):
        where = f"{data.task.name} / seed {a.seed} / fold {a.fold}"
        assert a.chosen == b.chosen and len(a.chosen["grid"]) > 1, where
        assert a.valid == b.valid and a.valid_sha256 == b.valid_sha256, where
        np.testing.assert_array_equal(a.test_scores, b.test_scores, err_msg=where)
        assert a.test[primary] != b.test[primary], where  # the poison reached the scored labels, and only them


def test_regression_through_the_protocol_is_blind_to_test_targets(tiny_tasks: Path, tiny_data: Path) -> None:
    if not (tiny_tasks / "synth_pitch_reg.yaml").exists() or "r2" not in M.HIGHER_IS_BETTER:
        pytest.skip("the regression task and metrics land separately")
    data = open_task_data(load_task("synth_pitch_reg", tiny_tasks), tiny_data)
    rng = np.random.default_rng(18)
    target = (data.y - data.y.mean()) / data.y.std()
    x = (np.outer(np.sin(target), rng.standard_normal(8)) + np.outer(np.cos(target), rng.standard_normal(8))).astype(
        np.float32
    ) + 0.1 * rng.standard_normal((data.n, 8)).astype(np.float32)  # the target is an angle: cosine kNN reads it
    assert data.split is not None
    test = np.flatnonzero(data.split == "test")
    y = data.y.copy()
    y[test] = y[test][::-1] + 7.0  # wrong targets on the test rows only
    clean = evaluate_probe(data, x, "knn", [42])[0]
    dirty = evaluate_probe(dataclasses.replace(data, y=y), x, "knn", [42])[0]
    assert clean.test_scores is not None and clean.test_scores.shape == (len(test),)
    assert clean.chosen == dirty.chosen and clean.valid == dirty.valid
    np.testing.assert_array_equal(clean.test_scores, dirty.test_scores)
    assert clean.test["r2"] == pytest.approx(r2(data.y[test], clean.test_scores), abs=1e-9)
    assert clean.test["r2"] > 0.5
    assert dirty.test["r2"] < 0
