"""``evalbench embed``: .npz exports of clip embeddings on the tiny synthetic suite, cache reuse, one-line errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from evalbench.cli import main
from tests.conftest import Env


def embed_args(env: Env, out: Path, *args: str, cache: Path | None = None) -> list[str]:
    """``evalbench embed`` arguments over the test's folders (``embed`` has no --results-dir)."""
    folders = {"--tasks-dir": env.tasks, "--encoders-dir": env.encoders, "--data-root": env.data}
    folders["--cache-dir"] = cache or env.cache
    return ["embed", "--out", str(out), *args, *(x for k, v in folders.items() for x in (k, str(v)))]


def embed_cli(env: Env, out: Path, *args: str, cache: Path | None = None) -> int:
    return main(embed_args(env, out, *args, cache=cache))


def metadata(env: Env, task: str) -> pd.DataFrame:
    return pd.read_csv(env.data / task / "metadata.csv", dtype=str, keep_default_na=False)


def load(path: Path) -> dict[str, np.ndarray]:
    with np.load(path) as npz:  # allow_pickle=False: every column is a plain array
        return {k: npz[k] for k in npz.files}


def test_embed_writes_one_npz_per_task_in_metadata_order(
    env: Env, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    out = tmp_path / "emb"
    assert embed_cli(env, out, "--encoder", "logmel", "--tasks", "synth_pitch,synth_timbre") == 0
    assert sorted(p.name for p in out.iterdir()) == ["synth_pitch.npz", "synth_timbre.npz"]  # no temporary files
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 2 and all("(computed)" in line for line in lines)
    assert str(out / "synth_pitch.npz") in lines[0] and "(120, 128)" in lines[0]

    pitch, meta = load(out / "synth_pitch.npz"), metadata(env, "synth_pitch")
    assert set(pitch) == {"embeddings", "file_name", "label", "split"}
    assert pitch["embeddings"].shape == (len(meta), 128) == (120, 128) and pitch["embeddings"].dtype == np.float32
    assert np.isfinite(pitch["embeddings"]).all()
    assert pitch["file_name"].dtype.kind == "U" and pitch["file_name"].tolist() == meta["file_name"].tolist()
    assert pitch["label"].tolist() == meta["label"].tolist()
    assert pitch["split"].tolist() == meta["split"].tolist() and set(pitch["split"]) == {"train", "valid", "test"}

    timbre, meta = load(out / "synth_timbre.npz"), metadata(env, "synth_timbre")
    assert set(timbre) == {"embeddings", "file_name", "label", "fold"}
    assert timbre["embeddings"].shape == (len(meta), 128) and timbre["embeddings"].dtype == np.float32
    assert timbre["file_name"].tolist() == meta["file_name"].tolist()
    assert timbre["label"].tolist() == meta["label"].tolist()
    assert timbre["fold"].dtype.kind == "i" and timbre["fold"].tolist() == meta["fold"].astype(int).tolist()
    assert set(timbre["fold"].tolist()) == {1, 2, 3, 4, 5}


def test_multilabel_labels_and_one_folder_per_encoder(env: Env, tmp_path: Path) -> None:
    out = tmp_path / "emb"
    assert embed_cli(env, out, "--encoder", "logmel,randproj", "--tasks", "synth_events") == 0
    files = sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file())
    assert files == ["logmel/synth_events.npz", "randproj/synth_events.npz"]
    meta = metadata(env, "synth_events")
    events = load(out / "logmel" / "synth_events.npz")
    assert events["label"].tolist() == meta["label"].tolist()  # the raw comma-joined tags
    assert any("," in label for label in events["label"].tolist())
    assert load(out / "randproj" / "synth_events.npz")["embeddings"].shape == (len(meta), 8)


def test_embed_reads_what_run_cached(env: Env, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(env.cli("run", "--encoder", "logmel", "--tasks", "synth_pitch", "--seeds", "1")) == 0
    record = json.loads((env.results / "logmel" / "synth_pitch.linear.json").read_text())
    assert record["timings"]["parts_computed"] == 3
    capsys.readouterr()
    args = ("--encoder", "logmel", "--tasks", "synth_pitch")
    assert embed_cli(env, tmp_path / "a", *args) == 0
    assert "(from cache)" in capsys.readouterr().out  # the very entries `run` wrote
    assert embed_cli(env, tmp_path / "b", *args) == 0
    assert "(from cache)" in capsys.readouterr().out
    first, second = load(tmp_path / "a" / "synth_pitch.npz"), load(tmp_path / "b" / "synth_pitch.npz")
    for key in first:  # the same cache entries read twice: exactly equal
        np.testing.assert_array_equal(first[key], second[key], err_msg=key)

    # recomputed into an empty cache with another batch size: the same numbers up to float32 rounding
    # (log-mel statistics of the same clips, only the batching differs)
    assert embed_cli(env, tmp_path / "c", *args, "--batch-size", "7", cache=tmp_path / "other-cache") == 0
    assert "(computed)" in capsys.readouterr().out
    third = load(tmp_path / "c" / "synth_pitch.npz")
    np.testing.assert_allclose(third["embeddings"], first["embeddings"], rtol=1e-5, atol=1e-5)
    assert third["file_name"].tolist() == first["file_name"].tolist()


def _error(env: Env, capsys: pytest.CaptureFixture, out: Path, *args: str) -> str:
    capsys.readouterr()
    code = embed_cli(env, out, *args)
    captured = capsys.readouterr()
    err = captured.err.strip()
    assert code == 2
    assert len(err.splitlines()) == 1 and err.startswith("evalbench: error: ")
    assert not out.exists() and captured.out == ""  # nothing written, not even the folder
    return err


def test_mistakes_give_one_line_errors_and_write_nothing(
    env: Env, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    out = tmp_path / "emb"
    assert "did you mean 'synth_pitch'" in _error(env, capsys, out, "--encoder", "logmel", "--tasks", "synth_pich")
    assert "did you mean 'logmel'" in _error(env, capsys, out, "--encoder", "logmell", "--tasks", "synth_pitch")
    # a dataset that is not prepared fails before any other task is embedded
    err = _error(env, capsys, out, "--encoder", "logmel", "--tasks", "synth_pitch,esc50")
    assert "esc50" in err and "not prepared" in err
    err = _error(env, capsys, out, "--encoder", "logmel", "--tasks", "synth_pitch", "--batch-size", "0")
    assert "--batch-size" in err
    err = _error(env, capsys, out, "--encoder", "logmel,randproj", "--tasks", "synth_pitch", "--checkpoint", "x.pth")
    assert "--checkpoint needs exactly one --encoder" in err
    assert not list(env.cache.rglob("*.npy"))  # nothing was embedded either
