"""`evalbench bench load`: a generated task through prepare, verify, extraction and the probe, per-stage figures.

The full 100,000-clip run is a benchmark, not a test (docs/reliability.md has its
figures); here a 500-clip task goes through the same child process and every
stage, and the table and JSON must hold each stage's time and peak RSS and a
record whose accuracy shows the pipeline kept every clip with its label.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from evalbench.bench.load import RATE, SECONDS, STAGES, split_of, wav_bytes, write_source
from evalbench.cli import main


@pytest.mark.slow
def test_bench_load_reports_every_stage_and_the_peak_rss(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "load.json"
    args = ["bench", "load", "--clips", "500", "--json", str(out)]
    code = main([*args, "--data-root", str(tmp_path / "data"), "--cache-dir", str(tmp_path / "cache")])
    table = capsys.readouterr().out
    assert code == 0, table
    for stage in STAGES:
        assert f"load 500 clips: {stage} time" in table and f"load 500 clips: {stage} peak RSS" in table
    assert "load 500 clips: peak RSS of the child (ru_maxrss)" in table
    record = json.loads(out.read_text())
    assert record["command"] == "evalbench bench load --clips 500" and record["options"]["clips"] == 500
    figures = {f["figure"]: f for f in record["figures"]}
    for stage in STAGES:
        assert figures[f"load 500 clips: {stage} time"]["value"] > 0
        # a real Python process with torch imported: far more than 50 MiB, far less than the machine
        assert 50 < figures[f"load 500 clips: {stage} peak RSS"]["value"] < 16 * 1024
    assert figures["load 500 clips: peak RSS of the child (ru_maxrss)"]["value"] > 50
    accuracy = figures["load 500 clips: record test accuracy (logmel, linear)"]
    assert accuracy["met"] is True and 0.9 <= accuracy["value"] <= 1.0
    assert "500 clips prepared" in figures["load 500 clips: prepare time"]["note"]
    assert "500 files decode cleanly" in figures["load 500 clips: verify time"]["note"]
    assert "500 clips embedded, 128-d" in figures["load 500 clips: extract time"]["note"]


def test_too_few_clips_is_a_one_line_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["bench", "load", "--clips", "50", "--data-root", str(tmp_path), "--cache-dir", str(tmp_path)])
    err = capsys.readouterr().err
    assert code == 2 and "--clips 50" in err and "at least 100" in err and "Traceback" not in err


def test_generated_source_is_canonical_and_reused(tmp_path: Path) -> None:
    assert write_source(tmp_path, 120) > 0
    lines = (tmp_path / "metadata.csv").read_text().splitlines()
    assert lines[0] == "file_name,label,split,group" and len(lines) == 121
    lengths = []
    for i, line in enumerate(lines[1:]):
        name, label, split, group = line.split(",")
        assert split == split_of(i) and group == f"g{i}" and label == ["a220", "a440", "a880", "a1760"][i % 4]
        audio, sr = sf.read(tmp_path / name, dtype="float32")
        assert sr == RATE and audio.ndim == 1 and np.isfinite(audio).all() and np.abs(audio).max() < 1.0
        lengths.append(len(audio) / RATE)
    assert SECONDS[0] <= min(lengths) < max(lengths) <= SECONDS[1]
    assert {split_of(i) for i in range(120)} == {"train", "valid", "test"}
    stamp = (tmp_path / "metadata.csv").stat().st_mtime_ns
    assert write_source(tmp_path, 120) == 0.0 and (tmp_path / "metadata.csv").stat().st_mtime_ns == stamp


def test_hand_written_wav_decodes_to_its_samples() -> None:
    samples = np.array([0, 1, -1, 32767, -32768, 1234], dtype=np.int16)
    data, sr = sf.read(io.BytesIO(wav_bytes(samples)), dtype="int16")
    assert sr == RATE and data.tolist() == samples.tolist()
