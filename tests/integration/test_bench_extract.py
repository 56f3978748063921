"""`evalbench bench extract scaling long`: the parts run, report every figure, and compare like with like.

No assertion here is on a timing or on whether a speed target is met: speed
targets are what the command prints, never what a test checks.  What is
checked is the shape of the report and that each comparison is of the same
work (the same clips, the same embeddings).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch

from evalbench.bench import extract, long
from evalbench.bench.extract import QUICK, SECONDS, bare_forward, bench_task, pipeline, preload, random_weights
from evalbench.cli import main
from evalbench.data.prepare import open_task_data

RTOL, ATOL = 1e-4, 1e-5  # float32 rounding; the two loops run the same batches, so they agree far closer


@pytest.fixture(scope="module")
def bench_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One data root for the module: the quick tasks are generated once."""
    return tmp_path_factory.mktemp("bench-data")


@pytest.fixture
def one_thread() -> Iterator[None]:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_quick_parts_report_every_figure(tmp_path: Path, bench_data: Path, one_thread: None) -> None:
    out = tmp_path / "bench.json"
    parts = ["extract", "scaling", "long", "workers"]
    args = ["bench", *parts, "--quick", "--json", str(out), "--threads", "1", "--device", "cpu"]
    assert main([*args, "--data-root", str(bench_data), "--cache-dir", str(tmp_path / "cache")]) == 0

    record = json.loads(out.read_text())
    assert record["parts"] == ["extract", "scaling", "long", "workers"] and record["quick"] is True
    figures = {f["figure"]: f for f in record["figures"]}
    targets = {f"extract {name}: clips/s, pipeline (cold) vs bare forward": "ratio ≥ 0.9" for name in extract.ENCODERS}
    targets["extract logmel: clips/s, pipeline (cold) vs bare forward"] = ""  # informational
    targets["scaling byola: extraction time, 10× clips vs 10 × time of 1×"] = "ratio ≤ 1.1"
    targets["scaling byola: peak RSS, 10× clips vs 1×"] = "ratio ≤ 1.1"
    for name in long.ENCODERS:
        targets[f"long {name}: clips/s, batch 32 vs one clip per call"] = "ratio ≥ 0.95"
        targets[f"long {name}: most windows in one forward, batch 32 vs one clip"] = ""
    targets["workers byola: clips/s, --workers 1 vs 0"] = ""
    targets["workers byola: clips/s, --workers auto vs fastest count"] = "ratio ≥ 0.95"
    assert {name: f["target"] for name, f in figures.items()} == targets
    for figure in figures.values():
        assert isinstance(figure["value"], float) and figure["value"] > 0, figure
        assert isinstance(figure["baseline"], float) and figure["baseline"] > 0, figure
        assert isinstance(figure["ratio"], float) and figure["ratio"] > 0, figure
        assert isinstance(figure["met"], bool) if figure["target"] else figure["met"] is None, figure
        assert figure["note"], figure
    for name in extract.ENCODERS:
        note = figures[f"extract {name}: clips/s, pipeline (cold) vs bare forward"]["note"]
        assert "random weights" in note and "cold caches" in note and "embeddings agree" in note, note
    # not speeds but the adapters' windowing: a 30 s clip is 31 MSN windows; batched, both quick clips share a forward
    msn = figures["long msn: most windows in one forward, batch 32 vs one clip"]
    assert (msn["value"], msn["baseline"]) == (62.0, 31.0)
    assert "embeddings agree" in figures["long msn: clips/s, batch 32 vs one clip per call"]["note"]
    assert "auto picks 0 on cpu" in figures["workers byola: clips/s, --workers auto vs fastest count"]["note"]
    cache = tmp_path / "cache"
    leftovers = [*cache.glob("bench-*/bench-*"), *cache.glob("bench-scaling-*")]
    assert not leftovers, "a throwaway cache folder was left behind"


@pytest.mark.parametrize("name", ["logmel", "byola"])
def test_pipeline_and_bare_forward_encode_the_same_clips(
    name: str, tmp_path: Path, bench_data: Path, one_thread: None
) -> None:
    task = bench_task(tmp_path / "tasks", f"bench_extract_{QUICK.clips}", QUICK.clips, SECONDS)
    data = open_task_data(task, bench_data)
    enc = random_weights(name, torch.device("cpu"))
    x, seconds = pipeline(enc, data, tmp_path / "cold")
    assert seconds > 0
    # cold: every clip was decoded and resampled (44.1 -> 16 kHz) by the pipeline itself
    assert len(list((tmp_path / "cold" / "audio").rglob("*.f32c"))) == data.n

    batches = preload(enc, data, tmp_path / "preload")
    rows = np.concatenate([b[0] for b in batches])
    assert sorted(rows.tolist()) == list(range(data.n))  # every clip once
    assert all(len(r) == len(w) == len(n) <= extract.BATCH for r, w, n in batches)
    y, _ = bare_forward(enc, batches, data.n)
    assert x.shape == y.shape == (data.n, enc.dim)
    np.testing.assert_allclose(y, x, rtol=RTOL, atol=ATOL)
