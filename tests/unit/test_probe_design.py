"""The converged linear probe on rows read block by block (evalbench.probes.design) equals the whole-matrix probe.

Tolerances: blocks change only the order of float64 sums, so features and Gram matrices agree to rtol 1e-10;
the probe's solution is a converged optimisation started from the same point, whose stopping test can land one
iteration apart, so coefficients are compared at rtol 1e-6 of their scale and predictions exactly.
"""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import torch

from evalbench.embed.standardize import Standardizer
from evalbench.probes import design
from evalbench.probes.design import RowBlocks, probe_features
from evalbench.probes.lbfgs import row_space
from evalbench.probes.linear import LinearProbe

CPU = torch.device("cpu")


def _data(n: int, d: int, c: int, seed: int, label_type: str = "single") -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % c
    x = rng.standard_normal((c, d))[labels] * 0.7 + rng.standard_normal((n, d))
    if label_type == "multilabel":
        y = np.stack([labels == k for k in range(c)], 1).astype(np.float64)
        y[:, 0] = 1.0 - y[:, 1]  # two tags that co-occur with the others
    elif label_type == "regression":
        y = x[:, :3].sum(1) + 0.1 * rng.standard_normal(n)
    else:
        y = labels
    return Standardizer().fit_transform(x.astype(np.float32)), y


@pytest.fixture
def small_blocks(monkeypatch: pytest.MonkeyPatch) -> None:
    """Blocks of 4 KiB of float64: tens of blocks on these small matrices, as a large task has on 8 MiB."""
    monkeypatch.setattr(design, "BLOCK_BYTES", 4096)


def test_one_block_is_the_whole_row_space_computation_operation_for_operation() -> None:
    """Whole: the same bits as ``row_space`` and ``X V`` (what the probe computed before blocks existed)."""
    x, _ = _data(40, 300, 3, 0)
    xv, _ = _data(20, 300, 3, 1)
    feats = probe_features(x, xv, CPU, whole=True)
    v = torch.as_tensor(row_space(x))
    assert torch.equal(feats.train, torch.as_tensor(x.astype(np.float64)) @ v)
    assert torch.equal(feats.valid, torch.as_tensor(xv.astype(np.float64)) @ v)
    w = torch.randn(feats.rank, 3, dtype=torch.float64)
    assert torch.equal(feats.lift(w), v @ w)


@pytest.mark.usefixtures("small_blocks")
@pytest.mark.parametrize(("n", "d"), [(40, 300), (500, 24)], ids=["row_space", "row_blocks"])
def test_blocked_features_equal_whole_ones(n: int, d: int) -> None:
    x, _ = _data(n, d, 3, 2)
    xv, _ = _data(30, d, 3, 3)
    whole, blocked = probe_features(x, xv, CPU, whole=True), probe_features(x, xv, CPU, whole=False)
    assert blocked.rank == whole.rank == min(n - 1 if n < d else d, d)  # standardised: rank n − 1 below D
    w = torch.randn(whole.rank, 4, dtype=torch.float64)
    np.testing.assert_allclose(blocked.lift(w).numpy(), whole.lift(w).numpy(), rtol=1e-10, atol=1e-10)
    if n < d:  # the reduced features themselves: in RAM either way, and equal up to the basis' signs
        np.testing.assert_allclose(np.abs(blocked.train.numpy()), np.abs(whole.train.numpy()), atol=1e-9)
        return
    assert isinstance(blocked.train, RowBlocks) and len(list(blocked.train.blocks())) == 24  # 21 rows of 24 dims
    r = torch.randn(n, 4, dtype=torch.float64)
    np.testing.assert_allclose((blocked.train @ w).numpy(), (whole.train @ w).numpy(), rtol=1e-12)
    np.testing.assert_allclose((blocked.train.T @ r).numpy(), (whole.train.T @ r).numpy(), rtol=1e-10, atol=1e-12)


@pytest.mark.usefixtures("small_blocks")
@pytest.mark.parametrize("solver", ["newton", "lbfgs"])
@pytest.mark.parametrize(
    ("label_type", "n", "d"),
    [
        ("single", 60, 200),
        ("single", 400, 16),
        ("multilabel", 300, 12),
        ("regression", 50, 120),
        ("regression", 300, 8),
    ],
)
def test_the_probe_on_blocks_equals_the_probe_on_the_whole_matrix(
    monkeypatch: pytest.MonkeyPatch, solver: str, label_type: str, n: int, d: int
) -> None:
    c = 1 if label_type == "regression" else 4
    x, y = _data(n, d, max(c, 3), 4, label_type)
    xv, yv = _data(80, d, max(c, 3), 5, label_type)
    xt, _ = _data(100, d, max(c, 3), 6, label_type)
    metric = {"single": "accuracy", "multilabel": "map", "regression": "mae"}[label_type]
    n_out = y.shape[1] if label_type == "multilabel" else c

    def fit(whole: bool) -> LinearProbe:
        monkeypatch.setattr(design, "fits_whole", lambda rows, dim: whole)
        return LinearProbe(n_out, label_type, metric, solver=solver, tol=1e-8).fit(x, y, xv, yv)

    whole, blocked = fit(True), fit(False)
    assert blocked.chosen_["l2"] == whole.chosen_["l2"] and blocked.chosen_["rank"] == whole.chosen_["rank"]
    scale = float(np.abs(whole.coef_).max())
    np.testing.assert_allclose(blocked.coef_, whole.coef_, rtol=0, atol=1e-6 * scale)
    np.testing.assert_allclose(blocked.intercept_, whole.intercept_, rtol=0, atol=1e-6 * max(1.0, scale))
    if label_type == "regression":
        np.testing.assert_allclose(blocked.predict(xt), whole.predict(xt), rtol=1e-6)
    else:
        np.testing.assert_array_equal(blocked.predict(xt), whole.predict(xt))


@pytest.mark.usefixtures("small_blocks")
def test_without_room_for_the_row_space_the_unreduced_problem_gives_the_same_probe(monkeypatch) -> None:
    """Fewer clips than dimensions, but no room for ``n × n`` matrices: solved on D-dimensional row blocks."""
    x, y = _data(60, 150, 3, 8)
    xv, yv = _data(80, 150, 3, 9)
    xt, _ = _data(100, 150, 3, 10)
    monkeypatch.setattr(design, "fits_whole", lambda rows, dim: False)
    monkeypatch.setattr(design, "fits_row_space", lambda n: False)
    assert isinstance(probe_features(x, xv, CPU).train, RowBlocks)
    unreduced = LinearProbe(3, "single", "accuracy", solver="newton", tol=1e-8).fit(x, y, xv, yv)
    monkeypatch.setattr(design, "fits_row_space", lambda n: True)
    reduced = LinearProbe(3, "single", "accuracy", solver="newton", tol=1e-8).fit(x, y, xv, yv)
    assert unreduced.chosen_["rank"] == 150 and reduced.chosen_["rank"] == 59
    assert unreduced.chosen_["l2"] == reduced.chosen_["l2"]
    scale = float(np.abs(reduced.coef_).max())
    np.testing.assert_allclose(unreduced.coef_, reduced.coef_, rtol=0, atol=1e-5 * scale)  # the same optimum
    np.testing.assert_array_equal(unreduced.predict(xt), reduced.predict(xt))


def test_standardised_rows_of_a_large_rotation_go_to_a_scratch_file(tmp_path, monkeypatch) -> None:
    """With a scratch folder, rows over the scratch threshold are memory-mapped, with the same values."""
    import evalbench.utils.memory as memory

    x, _ = _data(300, 64, 3, 7)
    rows = np.arange(0, 300, 2)
    scaler = Standardizer().fit(x, rows)
    monkeypatch.setattr(memory, "SCRATCH_BYTES", 1024)
    monkeypatch.setattr(memory.scratch_array, "__defaults__", (1024,))
    mapped, in_ram = scaler.transform(x, rows, tmp_path), scaler.transform(x, rows)
    assert isinstance(mapped, np.memmap) and type(in_ram) is np.ndarray
    np.testing.assert_array_equal(mapped, in_ram)
    assert list(tmp_path.iterdir()) == []  # unlinked at once


HEADROOM = r"""
import resource
from evalbench.probes.design import fits_whole
from evalbench.utils.memory import private_headroom, proc_status
free = private_headroom()
assert free is not None and free > 1 << 30, free  # no limit: the machine's memory
base = proc_status("VmData")
resource.setrlimit(resource.RLIMIT_DATA, (base + (200 << 20), resource.getrlimit(resource.RLIMIT_DATA)[1]))
left = private_headroom()
assert (180 << 20) < left <= (200 << 20), left / 2**20
assert fits_whole(100, 16384) and not fits_whole(2000, 16384)  # 4 × 12.5 MiB fit in 200; 4 × 250 MiB do not
print("ok")
"""


def test_private_headroom_follows_the_data_limit() -> None:
    """``RLIMIT_DATA`` = VmData + 200 MiB: headroom 180–200 MiB, and :func:`fits_whole` decides by it."""
    done = subprocess.run([sys.executable, "-c", HEADROOM], capture_output=True, text=True, timeout=120)
    assert done.stdout.strip() == "ok", done.stderr[-2000:]


def test_cgroup_headroom_takes_the_tightest_limit_of_the_groups_and_their_parents(tmp_path, monkeypatch) -> None:
    """v1 and v2 memory cgroups: a limit on a parent counts; "max" and v1's 2^63-ish "no limit" do not."""
    import evalbench.utils.memory as memory

    def group(folder, limit: str, usage: int, v1: bool) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        names = ("memory.limit_in_bytes", "memory.usage_in_bytes") if v1 else ("memory.max", "memory.current")
        (folder / names[0]).write_text(limit + "\n")
        (folder / names[1]).write_text(f"{usage}\n")

    group(tmp_path / "memory" / "pod", "1000", 400, v1=True)  # the parent's limit: 600 left
    group(tmp_path / "memory" / "pod" / "box", str(2**63 - 4096), 400, v1=True)  # no limit of its own
    group(tmp_path / "slice", "5000", 1000, v1=False)  # v2 parent: 4,000 left
    group(tmp_path / "slice" / "job", "max", 1000, v1=False)
    proc = tmp_path / "cgroup"
    monkeypatch.setattr(memory, "CGROUP_ROOT", tmp_path)
    monkeypatch.setattr(memory, "PROC_CGROUP", proc)
    proc.write_text("4:memory:/pod/box\n1:cpu:/\n0::/slice/job\n")
    assert memory._cgroup_headroom() == 600
    proc.write_text("0::/slice/job\n")
    assert memory._cgroup_headroom() == 4000
    proc.write_text("0::/\n")
    assert memory._cgroup_headroom() is None
