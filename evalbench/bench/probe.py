"""``evalbench bench probe``: is the ``evalbench`` linear protocol converged, and is it cheap?

Three groups of figures, each measured side by side in this process:

1. **Agreement with a converged reference**, on the embeddings of the
   synthetic suite (``logmel``, seed 42, every rotation): the protocol's test
   score against scikit-learn's ``LogisticRegression`` (L-BFGS to a gradient of
   1e-10 in the training row space, which has the same optimum as the full
   space and lets it converge; one per class for multi-label tasks) over every strength the protocol may reach
   (``l2`` 10^2 … 10^-8 in half decades, as ``C = 1 / (l2 · n)``;
   ``2 / (l2 · n)`` for two classes, where scikit-learn fits one logistic
   vector ``w = w₁ − w₂`` whose penalty is twice that of our two softmax
   columns; ``1 / (l2 · n · C)`` per class for multi-label), chosen on the same
   validation rows with the same tie rule (lower validation loss), without the
   protocol's early stop along the path.  Target: within 0.5 points.  The wall
   time of both is reported (informational).
2. The same on a generated problem of **2,000 clips × 3,072 dims × 50 classes**
   (Gaussian class means, 60/20/20 split), the size of a large task on a BYOL-A
   embedding.
3. **Cost against extraction**: an ESC-10-shaped task (400 clips of 5 s, 5
   folds, generated) embedded with the BYOL-A v2 network (``byola-random``: the
   same computation as the official weights) against the whole default
   protocol on those embeddings (5 seeds × 5 folds).  Target: the protocol costs
   less than the extraction (extraction ÷ protocol ≥ 1).

4. **MLP search, batched against one at a time**, on the problem of 2: the
   MLP probe's grid search (HEAR's 8 grid points, without evalbench's 0-layer
   point: two shape groups of 4 stacked candidates) against the same 8
   candidates each trained alone as a ``torch.nn.Sequential`` with
   ``torch.optim.Adam`` (:mod:`evalbench.bench.mlp_loop`: same initialisation,
   dropout draws, batch order, checks and patience).  Targets: time ratio ≥ 5
   and test accuracies within 0.5 points.

``--quick`` shrinks 2 and 4 to 500 × 256 × 10 (4: width 64, 30 epochs) and skips nothing else.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml

from evalbench import metrics as M
from evalbench.bench import BenchContext, Figure, ratio_at_least
from evalbench.bench.mlp_loop import one_at_a_time
from evalbench.data.prepare import open_task_data
from evalbench.data.splits import rotations
from evalbench.data.task_data import TaskData
from evalbench.embed.cache import EmbeddingCache
from evalbench.embed.extract import embed_task, load_encoder_model, verify_checkpoint
from evalbench.embed.standardize import Standardizer
from evalbench.paths import builtin_catalog
from evalbench.presets import get_preset, probe_config
from evalbench.probes.lbfgs import row_space
from evalbench.probes.linear import LinearProbe, mean_loss
from evalbench.probes.mlp import MLPProbe, grid_candidates
from evalbench.protocol import evaluate_probe, summarize
from evalbench.specs.encoder import load_encoder
from evalbench.specs.task import load_task
from evalbench.utils.device import resolve_device

SUITE = ("synth_pitch", "synth_timbre", "synth_events", "synth_detect")
L2_GRID = tuple(float(10.0**e) for e in np.arange(2.0, -8.01, -0.5))  # the bounds of the protocol's extension
TOLERANCE = 0.5  # points


def sklearn_reference(
    x: np.ndarray, y: np.ndarray, xv: np.ndarray, yv: np.ndarray, metric: str, label_type: str
) -> tuple[Callable[[np.ndarray], np.ndarray], float]:
    """Converged logistic regression, strength chosen on validation; returns (its predict_proba, its L2 strength).

    Solved in the training row space (:func:`~evalbench.probes.lbfgs.row_space`; exact, the penalty zeroes every
    other direction): in the full 3,072-d space scikit-learn's L-BFGS stopped after 3 iterations even at 1e-6.
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.multiclass import OneVsRestClassifier

    basis = row_space(x)
    project = (lambda a: a) if basis is None else (lambda a: np.asarray(a, np.float64) @ basis)
    x, xv = project(x), project(xv)
    best = None
    for l2 in L2_GRID:
        scale = len(y) * (y.shape[1] if label_type == "multilabel" else 1)
        if label_type != "multilabel" and len(np.unique(y)) == 2:
            scale /= 2  # one logistic vector w = w1 - w2 of our two softmax columns: ‖W‖² = ‖w‖² / 2 at the optimum
        model = LogisticRegression(C=1.0 / (l2 * scale), tol=1e-10, max_iter=20000)
        model = (OneVsRestClassifier(model) if label_type == "multilabel" else model).fit(x, y)
        proba = model.predict_proba(xv)
        key = (-M.compute([metric], yv, proba, label_type)[metric], mean_loss(yv, proba, label_type))
        if best is None or key < best[0]:
            best = (key, model, l2)
    assert best is not None
    chosen = best[1]
    return (lambda a: chosen.predict_proba(project(a))), best[2]


def reference_score(data: TaskData, x: np.ndarray, seed: int) -> float:
    """The reference's mean test score over the task's rotations for ``seed``."""
    task, scores = data.task, []
    for rot in rotations(data, seed):
        scaler = Standardizer().fit(x[rot.train])
        tr, va, te = (scaler.transform(x[r]) for r in (rot.train, rot.valid, rot.test))
        predict, _ = sklearn_reference(tr, data.y[rot.train], va, data.y[rot.valid], task.primary_metric,
                                       task.labels.type)  # fmt: skip
        proba = predict(te)
        scores.append(M.compute([task.primary_metric], data.y[rot.test], proba, task.labels.type)[task.primary_metric])
    return float(np.mean(scores))


def _agreement(name: str, ours: float, ref: float, t_ours: float, t_ref: float) -> list[Figure]:
    diff = 100 * (ours - ref)
    return [
        Figure(f"probe {name}: evalbench − converged LR (points)", diff, "points", None, f"|Δ| ≤ {TOLERANCE}",
               abs(diff) <= TOLERANCE + 1e-9, f"evalbench {100 * ours:.2f}, scikit-learn {100 * ref:.2f}"),
        Figure(f"probe {name}: evalbench probe time", t_ours, "s", t_ref, "",
               None, f"baseline: scikit-learn over {len(L2_GRID)} strengths"),
    ]  # fmt: skip


def _embed(name: str, data: TaskData, ctx: BenchContext) -> tuple[np.ndarray, float]:
    spec = load_encoder(name, builtin_catalog() / "encoders")
    enc = load_encoder_model(spec, resolve_device(ctx.device), verify_checkpoint(spec))
    start = time.perf_counter()
    x, _ = embed_task(enc, data, EmbeddingCache(ctx.cache_dir / "embeddings"), 32, 0)
    return x, time.perf_counter() - start


def _protocol(data: TaskData, x: np.ndarray, seeds: list[int], device: str) -> tuple[float, float]:
    config = probe_config(get_preset("evalbench"), "linear")
    start = time.perf_counter()
    runs = evaluate_probe(data, x, "linear", seeds, device, config)
    seconds = time.perf_counter() - start
    return summarize(runs, [data.task.primary_metric])[data.task.primary_metric]["mean"], seconds


def suite_figures(ctx: BenchContext) -> list[Figure]:
    """Group 1: the synthetic suite on ``logmel`` embeddings, seed 42."""
    figures, device = [], str(resolve_device(ctx.device))
    for name in SUITE:
        data = open_task_data(load_task(name, builtin_catalog() / "tasks"), ctx.data_root)
        x, _ = _embed("logmel", data, ctx)
        ours, t_ours = _protocol(data, x, [42], device)
        start = time.perf_counter()
        ref = reference_score(data, x, 42)
        figures += _agreement(f"logmel × {name}", ours, ref, t_ours, time.perf_counter() - start)
        ctx.log(f"bench probe: {name}: evalbench {100 * ours:.2f}, converged LR {100 * ref:.2f}")
    return figures


def generated_problem(quick: bool) -> tuple[tuple[int, int, int], list[np.ndarray], list[np.ndarray]]:
    """The generated problem of groups 2 and 4: ``((n, d, c), [x_train, x_valid, x_test], [y_train, ...])``.

    2,000 clips × 3,072 dims × 50 classes (``quick``: 500 × 256 × 10), Gaussian class means, a 60/20/20 split,
    standardised on train.
    """
    n, d, c = (500, 256, 10) if quick else (2000, 3072, 50)
    rng = np.random.default_rng(0)
    y = np.arange(n) % c
    scale = 0.4 if quick else 0.1  # full: nearest class mean gets ~55 %, so the probe has work to do
    x = (scale * rng.standard_normal((c, d))[y] + rng.standard_normal((n, d))).astype(np.float32)
    order = rng.permutation(n)
    parts = np.split(order, [int(0.6 * n), int(0.8 * n)])
    scaler = Standardizer().fit(x[parts[0]])
    return (n, d, c), [scaler.transform(x[r]) for r in parts], [y[r] for r in parts]


def large_figures(ctx: BenchContext) -> list[Figure]:
    """Group 2: a generated 2,000 × 3,072 × 50 problem (``--quick``: 500 × 256 × 10)."""
    (n, d, c), (xtr, xva, xte), (ytr, yva, yte) = generated_problem(ctx.quick)
    start = time.perf_counter()
    probe = LinearProbe(c, "single", "accuracy", **probe_config(get_preset("evalbench"), "linear"))
    probe.fit(xtr, ytr, xva, yva)
    t_ours = time.perf_counter() - start
    ours = M.compute(["accuracy"], yte, probe.predict_proba(xte), "single")["accuracy"]
    start = time.perf_counter()
    predict, _ = sklearn_reference(xtr, ytr, xva, yva, "accuracy", "single")
    t_ref = time.perf_counter() - start
    ref = M.compute(["accuracy"], yte, predict(xte), "single")["accuracy"]
    ctx.log(f"bench probe: {n} × {d} × {c}: evalbench {100 * ours:.2f}, converged LR {100 * ref:.2f}")
    return _agreement(f"{n} clips × {d} dims × {c} classes", ours, ref, t_ours, t_ref)


def mlp_figures(ctx: BenchContext) -> list[Figure]:
    """Group 4: the MLP probe's batched grid search against the same 8 candidates trained one at a time."""
    (n, d, c), (xtr, xva, xte), (ytr, yva, yte) = generated_problem(ctx.quick)
    options: dict[str, Any] = {"search": "grid", "add_linear_point": False}  # HEAR's 8 points: 2 shapes × 4
    if ctx.quick:
        options |= {"width": 64, "max_epochs": 30}
    probe = MLPProbe(c, "single", "accuracy", random_state=0, **options)
    start = time.perf_counter()
    probe.fit(xtr, ytr, xva, yva)
    t_batched = time.perf_counter() - start
    batched = M.compute(["accuracy"], yte, probe.predict_proba(xte), "single")["accuracy"]
    cands = grid_candidates(dict(probe.grid), probe.grid_points, probe.fixed_params, False)
    start = time.perf_counter()
    pick, results = one_at_a_time(
        cands, torch.as_tensor(xtr), torch.as_tensor(ytr), torch.as_tensor(xva), yva, c, "single", "accuracy", 0,
        probe.batch_size, probe.max_epochs, probe.check_every, probe.patience,
    )  # fmt: skip
    t_loop = time.perf_counter() - start
    with torch.no_grad():
        logits = results[pick].model(torch.as_tensor(xte))
    loop = M.compute(["accuracy"], yte, torch.softmax(logits, -1).double().numpy(), "single")["accuracy"]
    diff = 100 * (batched - loop)
    epochs = sum(t["epochs"] for t in probe.trials_), sum(r.epochs for r in results)
    ctx.log(
        f"bench probe: mlp grid ({len(cands)} candidates) on {n} × {d} × {c}: batched {t_batched:.1f} s, "
        f"acc {100 * batched:.2f}; one at a time {t_loop:.1f} s, acc {100 * loop:.2f}; "
        f"ratio {t_loop / t_batched:.2f}; candidate-epochs {epochs[0]} vs {epochs[1]}"
    )
    note = (
        f"{len(cands)} candidates (HEAR's grid points, no 0-layer point), width {probe.width}, "
        f"batched {t_batched:.1f} s vs one at a time {t_loop:.1f} s; candidate-epochs {epochs[0]} vs {epochs[1]}"
    )
    return [
        ratio_at_least("probe mlp: one-at-a-time ÷ batched grid search time", t_loop, t_batched, "s", 5.0, note),
        Figure("probe mlp: batched − one-at-a-time test accuracy (points)", diff, "points", None, f"|Δ| ≤ {TOLERANCE}",
               abs(diff) <= TOLERANCE + 1e-9, f"batched {100 * batched:.2f}, one at a time {100 * loop:.2f}"),
    ]  # fmt: skip


def esc10_task(folder: Path) -> Path:
    """A tasks folder holding ``bench_esc10``: ESC-10's shape (400 clips of 5 s, 5 folds) from the timbre generator."""
    spec = yaml.safe_load((builtin_catalog() / "tasks" / "synth_timbre.yaml").read_text())
    base = yaml.safe_load((builtin_catalog() / "tasks" / "_base" / "synthetic.yaml").read_text())
    spec.pop("include")
    spec.update(name="bench_esc10", description="ESC-10-shaped generated task for `evalbench bench probe`.")
    spec["dataset"] = {**base["dataset"], "options": {**spec["dataset"]["options"], "per_class": 25}}
    spec["audio"] = {**base["audio"], "clip_seconds": 5.0}
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "bench_esc10.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    return folder


def cost_figures(ctx: BenchContext) -> list[Figure]:
    """Group 3: the whole default protocol against BYOL-A extraction on an ESC-10-shaped task."""
    data = open_task_data(load_task("bench_esc10", esc10_task(ctx.cache_dir / "tasks")), ctx.data_root)
    x, extract_s = _embed("byola-random", data, ctx)
    seeds = list(get_preset("evalbench").seeds)
    _, protocol_s = _protocol(data, x, seeds, str(resolve_device(ctx.device)))
    note = (
        f"{data.n} clips of 5 s, 5 folds; protocol = {len(seeds)} seeds × 5 folds on {x.shape[1]}-d embeddings; "
        f"extraction {extract_s:.1f} s, protocol {protocol_s:.1f} s"
    )
    return [ratio_at_least("probe: BYOL-A extraction ÷ whole default protocol", extract_s, protocol_s, "s", 1.0, note)]


def measure(ctx: BenchContext) -> list[Figure]:
    """Every figure of the part (module docstring)."""
    torch.manual_seed(0)
    return suite_figures(ctx) + large_figures(ctx) + mlp_figures(ctx) + cost_figures(ctx)


__all__ = ["esc10_task", "generated_problem", "measure", "mlp_figures", "reference_score", "sklearn_reference"]
