"""`verify` names every bad file: corrupt, truncated, zero-length, non-audio, silent, wrong length."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import soundfile as sf

from evalbench.data.verify import check_file, verify_task
from evalbench.specs.task import load_task


def test_each_kind_of_bad_file_is_named(tmp_path: Path) -> None:
    sr = 16000
    good = tmp_path / "good.wav"
    sf.write(good, 0.1 * np.sin(np.arange(sr) / 5.0), sr, subtype="PCM_16")
    files = {
        "truncated.wav": good.read_bytes()[: len(good.read_bytes()) // 2],
        "empty.wav": b"",
        "text.wav": b"this is not audio at all",
    }
    for name, content in files.items():
        (tmp_path / name).write_bytes(content)
    sf.write(tmp_path / "silent.wav", np.zeros(sr), sr)
    sf.write(tmp_path / "short.wav", np.ones(100) * 0.1, sr)
    expect = {
        "truncated.wav": "truncated",
        "empty.wav": "empty",
        "text.wav": "unreadable",
        "silent.wav": "silent",
        "short.wav": "too_short",
        "missing.wav": "missing",
    }
    assert check_file(good, 0.5, 2.0) is None
    for name, kind in expect.items():
        problem = check_file(tmp_path / name, 0.5, 2.0)
        assert problem is not None and problem.kind == kind and problem.path == str(tmp_path / name)
    assert check_file(good, 0.0, 0.5).kind == "too_long"


def test_verify_reports_problems_and_counts(tiny_tasks: Path, tiny_data: Path, tmp_path: Path) -> None:
    task = load_task("synth_timbre", tiny_tasks)
    clean = verify_task(task, tiny_data)
    assert clean.ok and clean.n_files == 160
    assert list(clean.counts.columns) == ["fold1", "fold2", "fold3", "fold4", "fold5", "total"]
    assert (clean.counts["total"] == 20).all() and (clean.counts["fold1"] == 4).all()
    shutil.copytree(tiny_data / "synth_timbre", tmp_path / "synth_timbre")
    (tmp_path / "synth_timbre" / "audio" / "timbre_00007.wav").write_bytes(b"")
    report = verify_task(task, tmp_path)
    assert [(Path(p.path).name, p.kind) for p in report.problems] == [("timbre_00007.wav", "empty")]
