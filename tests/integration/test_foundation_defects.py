"""Each defect of the foundation that recorded a wrong number (or blamed the wrong file), reproduced.

Every test here builds the situation a careful user found (damaged cache, edited
audio, truncated or NaN clips, a class with no training clips, path aliases, a
deleted file, float noise in fitted statistics) on a private copy of the tiny
synthetic data, and checks that evalbench now recomputes or stops with a message
naming the file, and never writes a wrong record.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from evalbench.cli import main
from tests.conftest import Env
from tests.data.helpers import write_audio

TASK_YAML = (
    "name: mine\nversion: 1\ndescription: low or high tones\n"
    "dataset: {{builder: manifest{dataset}}}\naudio: {{sample_rate: 16000, clip_seconds: 1.0}}\n"
    "labels: {{type: {label_type}, classes: {classes}{labels}}}\nsplits: {splits}\nmetrics: [accuracy]\n"
)


def make_task(
    env: Env,
    root: Path,
    meta: pd.DataFrame,
    *,
    classes: str = "[absent, present]",
    label_type: str = "single",
    splits: str = "{type: fixed}",
    labels: str = "",
    dataset: str = "",
) -> Path:
    """Write task 'mine' (manifest builder) over ``root/source`` with ``meta``; point ``env`` at it."""
    source = root / "source"
    meta.to_csv(source / "metadata.csv", index=False)
    tasks = root / "tasks"
    tasks.mkdir(exist_ok=True)
    (tasks / "mine.yaml").write_text(
        TASK_YAML.format(classes=classes, label_type=label_type, splits=splits, labels=labels, dataset=dataset)
    )
    env.tasks, env.data = tasks, root / "data"
    return source


def copy_detect(env: Env, root: Path) -> tuple[Path, pd.DataFrame]:
    """A private, damageable dataset: 40 one-second tones, 'absent' low and 'present' high, 24/8/8 split."""
    rows = []
    for i in range(40):
        label = ("absent", "present")[i % 2]
        name = f"audio/clip_{i:02d}.wav"
        write_audio(root / "source" / name, 1.0, 16000, freq=(220.0, 1760.0)[i % 2] * (1 + 0.01 * i), seed=i)
        rows.append({"file_name": name, "label": label, "split": "train" if i < 24 else "valid" if i < 32 else "test"})
    return root / "source", pd.DataFrame(rows)


def prepare(env: Env, source: Path, *extra: str) -> int:
    return main(["data", "prepare", "mine", "--source", str(source), "--tasks-dir", str(env.tasks),
                 "--data-root", str(env.data), *extra])  # fmt: skip


def run(env: Env, *args: str) -> int:
    return main(env.cli("run", "--tasks", "mine", "--seeds", "1", *args))


def record(env: Env, encoder: str = "logmel") -> dict:
    return json.loads((env.results / encoder / "mine.linear.json").read_text())


@pytest.fixture
def mine(env: Env, tmp_path: Path) -> tuple[Env, Path, pd.DataFrame]:
    """Task 'mine': a prepared manifest dataset of its own; returns (env, source folder, metadata)."""
    source, meta = copy_detect(env, tmp_path)
    make_task(env, tmp_path, meta)
    assert prepare(env, source) == 0
    return env, source, meta


# 1. Cache entries are named by their full key and verified on load.
def test_cache_entries_of_two_keys_sit_side_by_side_and_load_verifies_identity(tmp_path: Path) -> None:
    from evalbench.embed.cache import EmbeddingCache

    cache = EmbeddingCache(tmp_path)
    a, b = np.ones((3, 2), np.float32), np.full((3, 2), 2.0, np.float32)
    cache.store("enc", "task", "train", {"k": "A"}, a)
    cache.store("enc", "task", "train", {"k": "B"}, b)
    assert len(list((tmp_path / "enc" / "task").glob("train.*.npy"))) == 2  # not one 'train.npy' slot
    np.testing.assert_array_equal(cache.load("enc", "task", "train", {"k": "A"}), a)
    np.testing.assert_array_equal(cache.load("enc", "task", "train", {"k": "B"}), b)
    npy_a = cache.paths("enc", "task", "train", cache.key({"k": "A"}))[0]
    npy_b = cache.paths("enc", "task", "train", cache.key({"k": "B"}))[0]
    shutil.copyfile(npy_b, npy_a)  # another process's array under A's name: same size, other bytes
    assert cache.load("enc", "task", "train", {"k": "A"}) is None


# 2. Editing audio in place invalidates the resampled audio, fitted state, embeddings and records.
def test_audio_edited_in_place_is_re_embedded_and_scored_again(mine, tmp_path: Path, capsys) -> None:
    env, source, meta = mine
    assert run(env, "--encoder", "logmel") == 0
    before = record(env)
    assert before["scores"]["test"]["accuracy"]["mean"] > 0.7
    # Overwrite every test clip with a tone of the other class: same size, different sound.
    for i, (name, label) in enumerate(meta[meta.split == "test"][["file_name", "label"]].itertuples(index=False)):
        write_audio(source / name, 1.0, 16000, freq=1760.0 if label == "absent" else 220.0, seed=100 + i)
    capsys.readouterr()
    assert run(env, "--encoder", "logmel") == 0
    assert "1 record(s) written, 0 up to date" in capsys.readouterr().out
    after = record(env)
    assert after["timings"]["parts_computed"] == 1 and after["timings"]["parts_cached"] == 2  # only 'test' changed
    assert after["scores"]["test"]["accuracy"]["mean"] < 0.3  # labels now contradict the audio
    assert after["task"]["dataset_sha256"] != before["task"]["dataset_sha256"]
    # A fresh cache gives the same (true) score; `prepare --force` then run finds everything up to date.
    fresh = dataclasses.replace(env, cache=tmp_path / "fresh-cache", results=tmp_path / "fresh-results")
    assert run(fresh, "--encoder", "logmel") == 0
    assert record(fresh)["scores"]["test"] == after["scores"]["test"]
    assert prepare(env, source, "--force") == 0
    capsys.readouterr()
    assert run(env, "--encoder", "logmel") == 0
    assert "0 record(s) written, 1 up to date" in capsys.readouterr().out


# 3. Same-size corruption of a cache entry is detected and recomputed.
def test_same_size_cache_corruption_is_detected_and_recomputed(mine, caplog) -> None:
    env, _, _ = mine
    assert run(env, "--encoder", "logmel") == 0
    first = record(env)
    entry = next((env.cache / "logmel" / "mine").glob("test.*.npy"))
    raw = bytearray(entry.read_bytes())
    raw[200:400] = bytes(200)  # zero some values, size unchanged
    entry.write_bytes(bytes(raw))
    with caplog.at_level(logging.WARNING):
        assert run(env, "--encoder", "logmel", "--overwrite") == 0
    assert "checksum" in caplog.text and entry.name in caplog.text
    second = record(env)
    assert second["timings"]["parts_computed"] == 1
    assert second["scores"]["test"] == first["scores"]["test"]


# 4. A truncated WAV stops `run` and names the file.
def test_truncated_wav_is_refused_by_run(mine, capsys) -> None:
    env, source, meta = mine
    victim = source / meta.file_name.iloc[0]
    victim.write_bytes(victim.read_bytes()[:-4000])  # header still declares the full data chunk
    assert run(env, "--encoder", "logmel") == 2
    err = capsys.readouterr().err
    assert str(victim) in err and "truncated" in err
    assert not (env.results / "logmel" / "mine.linear.json").exists()


# 5. A class with no training clips is rejected before encoding, by validate, verify and run.
@pytest.mark.parametrize("case", ["only-in-test", "declared-without-clips"])
def test_class_without_training_clips_is_rejected(env: Env, tmp_path: Path, capsys, case: str) -> None:
    source, meta = copy_detect(env, tmp_path)
    classes = "[absent, present]"
    if case == "only-in-test":
        meta = meta[(meta.label == "absent") | (meta.split == "test")]
        missing, where = "present", "clips: test"
    else:
        classes, missing, where = "[absent, present, bell]", "bell", "none at all"
    make_task(env, tmp_path, meta, classes=classes)
    assert prepare(env, source) == 0
    capsys.readouterr()
    for command in (
        ["tasks", "validate", "--tasks-dir", str(env.tasks), "--data-root", str(env.data)],
        ["data", "verify", "mine", "--tasks-dir", str(env.tasks), "--data-root", str(env.data)],
        env.cli("run", "--encoder", "logmel", "--tasks", "mine", "--seeds", "1"),
    ):
        assert main(command) == 2
        out = capsys.readouterr()
        text = out.out + out.err
        assert f"class '{missing}' has no clips in split 'train'" in text and where in text, command
    assert not env.results.exists()
    # Declared as intended: accepted.
    make_task(env, tmp_path, meta, classes=classes, labels=f", allow_missing_in_train: [{missing}]")
    assert main(env.cli("run", "--encoder", "logmel", "--tasks", "mine", "--seeds", "1")) == 0


def test_class_only_in_one_fold_is_rejected(env: Env, tmp_path: Path, capsys) -> None:
    source, meta = copy_detect(env, tmp_path)
    fold = np.where(meta.label == "present", 1, np.arange(len(meta)) % 3 + 1)
    meta = meta.drop(columns="split").assign(fold=fold)
    make_task(env, tmp_path, meta, splits="{type: folds, folds: 3, validation: {rule: holdout}}")
    assert prepare(env, source) == 0
    assert run(env, "--encoder", "logmel") == 2
    assert "class 'present' has no training clips when fold 1 is the test fold" in capsys.readouterr().err


# 6. Path aliases and duplicate audio across splits.
@pytest.mark.parametrize("alias", ["./{}", "{}", "audio/../{}"])
def test_path_aliases_of_one_clip_are_rejected(env: Env, tmp_path: Path, capsys, alias: str) -> None:
    source, meta = copy_detect(env, tmp_path)
    name = meta.file_name.iloc[0]
    spelled = alias.format(name) if alias != "{}" else name.replace("/", "//", 1) if "/" in name else name
    extra = pd.DataFrame([{"file_name": spelled, "label": meta.label.iloc[0], "split": "test"}])
    make_task(env, tmp_path, pd.concat([meta, extra], ignore_index=True))
    assert prepare(env, source) == 2
    err = capsys.readouterr().err
    assert "is the same file as" in err and name in err


def test_identical_audio_on_both_sides_of_a_split_is_rejected(env: Env, tmp_path: Path, capsys) -> None:
    source, meta = copy_detect(env, tmp_path)
    train_file = meta[meta.split == "train"].file_name.iloc[0]
    test_file = meta[meta.split == "test"].file_name.iloc[0]
    shutil.copyfile(source / train_file, source / test_file)
    make_task(env, tmp_path, meta)
    assert prepare(env, source) == 0
    assert run(env, "--encoder", "logmel") == 2
    err = capsys.readouterr().err
    assert "identical audio" in err and train_file in err and test_file in err
    make_task(env, tmp_path, meta, dataset=", allow_duplicate_audio: true")
    assert run(env, "--encoder", "logmel") == 0


# 7. NaN samples: verify reports the file, fitting names it and caches nothing; fixing the file is enough.
def test_nan_samples_are_reported_by_name_and_never_cached(mine, capsys) -> None:
    env, source, meta = mine
    victim = source / meta[meta.split == "train"].file_name.iloc[3]
    good, sr = sf.read(victim, dtype="float32")
    bad = good.copy()
    bad[100:110] = np.nan
    sf.write(victim, bad, sr, subtype="FLOAT")
    assert main(["data", "verify", "mine", "--tasks-dir", str(env.tasks), "--data-root", str(env.data)]) != 0
    out = capsys.readouterr()
    assert str(victim) in out.out + out.err and "NaN" in out.out + out.err
    assert run(env, "--encoder", "byola-random") == 2
    err = capsys.readouterr().err
    assert str(victim) in err and "NaN" in err
    assert not list(env.cache.rglob("fit.*.json"))  # no non-finite state cached
    sf.write(victim, good, sr, subtype="PCM_16")  # fix the file: no cache to remove by hand
    assert run(env, "--encoder", "byola-random") == 0


# 8. A file deleted after prepare: "not found", named.
def test_file_deleted_after_prepare_is_named_as_not_found(mine, capsys) -> None:
    env, source, meta = mine
    victim = source / meta.file_name.iloc[5]
    victim.unlink()
    assert run(env, "--encoder", "logmel") == 2
    err = capsys.readouterr().err
    assert str(victim) in err and "not found" in err and "System error" not in err
    assert main(["data", "verify", "mine", "--tasks-dir", str(env.tasks), "--data-root", str(env.data)]) != 0
    assert "missing" in capsys.readouterr().out


# 9. Cache and record identity do not hang on the last bits of fitted floats.
def test_fitted_state_is_keyed_by_its_inputs_and_compared_with_a_tolerance(mine, monkeypatch) -> None:
    from evalbench.adapters.normalize import LogMelNormalizer

    env, _, _ = mine
    assert run(env, "--encoder", "byola-random") == 0
    first = record(env, "byola-random")
    fit = LogMelNormalizer.fit

    def perturbed(scale: float):
        def fit_then_nudge(self, *args, **kwargs) -> None:
            fit(self, *args, **kwargs)
            self.mean *= 1 + scale  # what another CPU's summation order does to the last bits

        return fit_then_nudge

    for f in env.cache.rglob("fit.*.json"):
        f.unlink()
    monkeypatch.setattr(LogMelNormalizer, "fit", perturbed(1e-8))
    assert run(env, "--encoder", "byola-random", "--overwrite") == 0
    second = record(env, "byola-random")
    assert second["encoder"]["fingerprint"] == first["encoder"]["fingerprint"]
    assert second["timings"]["parts_cached"] == 3 and second["scores"] == first["scores"]
    assert second["encoder"]["fitted"]["mean"] != first["encoder"]["fitted"]["mean"]  # recorded as fitted

    for f in env.cache.rglob("fit.*.json"):
        f.unlink()
    monkeypatch.setattr(LogMelNormalizer, "fit", perturbed(1e-2))  # really different statistics: recompute
    assert run(env, "--encoder", "byola-random", "--overwrite") == 0
    assert record(env, "byola-random")["timings"]["parts_computed"] == 3
