"""`evalbench data import`: layouts, the grouped stratified split, the files written, and every user mistake."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
import yaml

from evalbench.data import import_splits as S
from evalbench.data.importer import ImportOptions, import_folder
from evalbench.data.metadata import read_prepared
from evalbench.errors import DataError
from evalbench.specs.task import load_task

EMOTIONS = ("ANG", "HAP", "SAD")


def clip(path: Path, seed: int, seconds: float = 0.25, sr: int = 16000) -> Path:
    """A short WAV whose bytes are unique to ``seed``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    t = np.arange(round(seconds * sr)) / sr
    x = 0.3 * np.sin(2 * np.pi * (200 + seed % 50 * 10) * t) + 0.01 * rng.standard_normal(len(t))
    sf.write(path, x.astype(np.float32), sr)
    return path


def class_folders(root: Path, classes=("bark", "meow", "moo"), per_class: int = 10) -> Path:
    """``root/<class>/<n>.wav``."""
    for c, name in enumerate(classes):
        for i in range(per_class):
            clip(root / name / f"{i}.wav", seed=100 * c + i)
    return root


def actors(root: Path, n_actors: int = 6, takes: int = 2) -> Path:
    """``root/Actor_NN/NN_<EMO>_<take>.wav``: labels and groups in the path."""
    for a in range(1, n_actors + 1):
        for e, emo in enumerate(EMOTIONS):
            for t in range(takes):
                clip(root / f"Actor_{a:02d}" / f"{a:02d}_{emo}_{t}.wav", seed=1000 * a + 10 * e + t)
    return root


def run(tmp_path: Path, source: Path, **kw):
    opts = ImportOptions(source=source, name=kw.pop("name", "mine"), **kw)
    return import_folder(opts, tmp_path / "data", tmp_path / "tasks")


def error(tmp_path: Path, source: Path, **kw) -> str:
    with pytest.raises(DataError) as exc:
        run(tmp_path, source, **kw)
    return str(exc.value)


def test_class_folders_give_a_stratified_fixed_split_read_in_place(tmp_path: Path) -> None:
    source = class_folders(tmp_path / "animals")
    done = run(tmp_path, source)
    task = load_task("mine", tmp_path / "tasks")
    assert task.dataset.builder == "manifest" and task.labels.classes == ["bark", "meow", "moo"]
    assert task.splits.type == "fixed" and task.metrics == ["accuracy", "roc_auc"]
    assert task.audio.sample_rate == 16000 and task.audio.clip_seconds == 0.3  # 0.25 s rounded up to a tenth
    meta = pd.read_csv(tmp_path / "data" / "mine" / "metadata.csv", dtype=str)
    assert list(meta.columns) == ["file_name", "label", "split"] and len(meta) == 30
    assert (meta["file_name"].str.split("/").str[0] == meta["label"]).all()
    per_class = pd.crosstab(meta["label"], meta["split"])[["train", "valid", "test"]]
    assert per_class.to_numpy().tolist() == [[7, 1, 2]] * 3  # 70/10/20 of every class
    dataset = read_prepared(tmp_path / "data" / "mine")
    assert dataset.audio_root == source.resolve() and not dataset.missing  # audio in place, nothing copied
    assert sorted(p.name for p in (tmp_path / "data" / "mine").iterdir()) == [
        "content.tsv",
        "dataset.json",
        "metadata.csv",
    ]
    info = json.loads((tmp_path / "data" / "mine" / "dataset.json").read_text())
    assert info["builder"] == "manifest" and info["import"]["labels"] == "subfolder names"
    assert done.version == 1 and done.spec_path == (tmp_path / "tasks" / "mine.yaml").resolve()
    assert "evalbench data import" in done.spec_path.read_text().splitlines()[2]


def test_regexes_give_grouped_stratified_folds_with_the_default_holdout(tmp_path: Path) -> None:
    source = actors(tmp_path / "emo", n_actors=6, takes=2)
    run(tmp_path, source, label_from=r"_([A-Z]+)_\d", group_from=r"^Actor_(\d+)/", folds=3)
    task = load_task("mine", tmp_path / "tasks")
    v = task.splits.validation
    assert (task.splits.type, task.splits.folds, v.rule, v.fraction, v.grouped, v.stratified) == (
        "folds",
        3,
        "holdout",
        0.1,
        True,
        True,
    )
    meta = pd.read_csv(tmp_path / "data" / "mine" / "metadata.csv", dtype={"group": str})
    assert (meta.groupby("group")["fold"].nunique() == 1).all()  # every actor in one fold
    assert meta.groupby("fold")["group"].nunique().tolist() == [2, 2, 2]
    assert set(meta["label"]) == set(EMOTIONS) and (meta.groupby(["fold", "label"]).size() == 4).all()


def test_csv_columns_base_names_and_notes(tmp_path: Path) -> None:
    source = actors(tmp_path / "emo", n_actors=4, takes=1)
    files = sorted(p.relative_to(source).as_posix() for p in source.rglob("*.wav"))
    table = pd.DataFrame(
        {
            "wav": [f.rsplit("/", 1)[1] for f in files[:-1]],  # base names; the last file is unlisted
            "emotion": [f.split("_")[2] for f in files[:-1]],
            "speaker": [f[6:8] for f in files[:-1]],
        }
    )
    table.to_csv(tmp_path / "meta.csv", index=False)
    done = run(tmp_path, source, csv=tmp_path / "meta.csv", group_col="speaker", folds=2)
    meta = pd.read_csv(tmp_path / "data" / "mine" / "metadata.csv", dtype=str)
    assert meta["file_name"].tolist() == files[:-1] and meta["label"].tolist() == table["emotion"].tolist()
    assert (meta.groupby("group")["fold"].nunique() == 1).all()
    assert any("1 audio file(s)" in n and "not in meta.csv" in n for n in done.notes)


def test_csv_without_group_column_hints_at_one(tmp_path: Path) -> None:
    source = class_folders(tmp_path / "animals", per_class=4)
    files = sorted(p.relative_to(source).as_posix() for p in source.rglob("*.wav"))
    pd.DataFrame({"file_name": files, "label": [f.split("/")[0] for f in files], "speaker": "x"}).to_csv(
        tmp_path / "m.csv", index=False
    )
    done = run(tmp_path, source, csv=tmp_path / "m.csv", folds=2)
    assert any("--group-col speaker" in n for n in done.notes)


def test_given_split_keeps_it_and_carves_valid_from_train(tmp_path: Path) -> None:
    source = tmp_path / "sc"
    for s, n in (("train", 20), ("test", 5)):
        for c in ("yes", "no"):
            for i in range(n):
                clip(source / s / c / f"{i}.wav", seed=hash((s, c, i)) % 10_000)
    msg = error(tmp_path, source)
    assert "are split names, not classes" in msg and "--split-from '^([^/]+)/' --label-from '^[^/]+/([^/]+)/'" in msg
    run(tmp_path, source, split_from=r"^([^/]+)/", label_from=r"^[^/]+/([^/]+)/")
    meta = pd.read_csv(tmp_path / "data" / "mine" / "metadata.csv")
    assert (meta[meta["file_name"].str.startswith("test/")]["split"] == "test").all()
    assert meta["split"].value_counts().to_dict() == {"train": 36, "test": 10, "valid": 4}


def test_given_folds_are_renumbered(tmp_path: Path) -> None:
    source = tmp_path / "f"
    for fold in (0, 1, 2):
        for c in ("a", "b"):
            for i in range(2):
                clip(source / f"fold{fold}" / f"{c}_{i}.wav", seed=100 * fold + 10 * ord(c) + i)
    done = run(tmp_path, source, fold_from=r"fold(\d)/", label_from=r"/([ab])_")
    assert load_task("mine", tmp_path / "tasks").splits.folds == 3
    assert sorted(set(done.table["fold"])) == [1, 2, 3] and any("renumbered" in n for n in done.notes)


def test_given_split_with_a_group_on_both_sides_is_refused(tmp_path: Path) -> None:
    """A given split that puts one speaker in train and test would leak; it is refused at import."""
    source = tmp_path / "spk"
    for s in ("train", "test"):
        for spk in ("s1", "s2", "s3", "s4", "s5", "s6"):
            for c in ("yes", "no"):
                clip(source / s / f"{spk}_{c}.wav", seed=hash((s, spk, c)) % 10_000)
    kw = {"split_from": r"^([^/]+)/", "label_from": r"_(yes|no)\.wav$"}
    msg = error(tmp_path, source, group_from=r"/(s\d)_", **kw)
    assert msg.startswith("6 group(s) span several splits of the given split column") and "--group-from" in msg
    assert not (tmp_path / "tasks" / "mine.yaml").exists()
    run(tmp_path, source, **kw)  # without groups there is nothing to check
    assert (tmp_path / "tasks" / "mine.yaml").exists()


def test_identical_files_stay_in_one_fold(tmp_path: Path) -> None:
    source = class_folders(tmp_path / "animals", per_class=6)
    copy = source / "bark" / "copy_of_0.wav"
    copy.write_bytes((source / "bark" / "0.wav").read_bytes())
    done = run(tmp_path, source, folds=3)
    fold = dict(zip(done.table["file_name"], done.table["fold"], strict=True))
    assert fold["bark/0.wav"] == fold["bark/copy_of_0.wav"]
    assert "1 set(s) of byte-identical files kept together" in done.split_rule


def test_force_reimport_bumps_the_version_only_when_something_changed(tmp_path: Path) -> None:
    source = class_folders(tmp_path / "animals", per_class=5)
    run(tmp_path, source, folds=2)
    assert "already exists" in error(tmp_path, source, folds=2)
    assert run(tmp_path, source, folds=2, force=True).version == 1
    clip(source / "moo" / "new.wav", seed=777)
    assert run(tmp_path, source, folds=2, force=True).version == 2
    assert load_task("mine", tmp_path / "tasks").version == 2


@pytest.mark.parametrize(
    ("layout", "kw", "message"),
    [
        ("empty", {}, "no audio files found"),
        ("loose", {}, "2 of 32 audio files sit directly in the folder, not in a class-named subfolder"),
        ("animals", {"label_from": r"[a-z]+/\d"}, "the regex has no capture group"),
        ("animals", {"label_from": "(["}, "not a valid regular expression"),
        ("animals", {"label_from": r"^(bark|meow)/"}, "captures nothing in 10 of 30 files"),
        ("animals", {"group_col": "speaker"}, "--group-col speaker: needs --csv FILE"),
        ("animals", {"folds": 3, "split_fractions": "60/20/20"}, "--split-fractions is for a generated"),
        ("animals", {"split_fractions": "70/20"}, "--split-fractions '70/20': give TRAIN/VALID/TEST"),
        ("animals", {"folds": 40}, "--folds 40: only 30 clips to deal into 40 folds"),
        ("animals", {"name": "esc50"}, "a built-in task has that name"),
        ("animals", {"name": "synth"}, "a built-in suite has that name"),
        ("animals", {"name": "../up"}, "--name '../up': use letters"),
        ("one", {}, "all 10 files have the label 'only'"),
        ("rare", {"folds": 5}, "'rare' (1 clip(s))"),
        ("animals", {"exclude": r"\.wav$"}, "every audio file is left out by --exclude"),
    ],
)
def test_user_mistakes_are_clear_errors(tmp_path: Path, layout: str, kw: dict, message: str) -> None:
    source = tmp_path / layout
    source.mkdir()
    if layout in ("animals", "loose", "rare"):
        class_folders(source)
    if layout == "loose":
        clip(source / "stray.wav", 1)
        clip(source / "stray2.wav", 2)
    if layout == "rare":
        clip(source / "rare" / "0.wav", 5)
    if layout == "one":
        class_folders(source, classes=("only",))
    assert message in error(tmp_path, source, **kw)
    assert not (tmp_path / "tasks").exists()  # nothing written


def test_csv_mistakes_name_the_file_column_and_rows(tmp_path: Path) -> None:
    source = class_folders(tmp_path / "animals", per_class=3)
    csv = tmp_path / "m.csv"
    pd.DataFrame({"path": ["bark/0.wav", "gone.wav", "moo/9.wav"], "kind": ["bark", "x", "moo"]}).to_csv(
        csv, index=False
    )
    assert f"{csv}: no column 'knd' (--label-col); did you mean 'kind'?" in error(
        tmp_path, source, csv=csv, label_col="knd"
    )
    assert "which column holds the labels? none of ['path', 'kind'] has a usual name" in error(
        tmp_path, source, csv=csv
    )
    msg = error(tmp_path, source, csv=csv, label_col="kind")
    assert "column 'path': 2 of 3 rows name files not found under" in msg and "row 3: 'gone.wav'" in msg
    pd.DataFrame({"file": ["bark/0.wav", "bark/0.wav"], "label": ["bark", "bark"]}).to_csv(csv, index=False)
    assert "rows 2 and 3 both name" in error(tmp_path, source, csv=csv)
    pd.DataFrame({"file": ["0.wav"], "label": ["bark"]}).to_csv(csv, index=False)
    assert "'0.wav' matches 3 files" in error(tmp_path, source, csv=csv)


def test_deal_spreads_each_class_evenly_and_is_seeded() -> None:
    labels = ["a"] * 23 + ["b"] * 7 + ["c"] * 5
    ids = np.arange(len(labels))
    slots = S.deal(labels, ids, 5, seed=3)
    for cls, n in (("a", 23), ("b", 7), ("c", 5)):
        per = np.bincount(slots[np.array(labels) == cls], minlength=5)
        assert per.max() - per.min() <= 1 and per.sum() == n
    assert np.bincount(slots).max() - np.bincount(slots).min() <= 1
    assert (S.deal(labels, ids, 5, seed=3) == slots).all() and not (S.deal(labels, ids, 5, seed=4) == slots).all()


def test_make_split_with_few_groups_gives_each_group_a_slot() -> None:
    labels = [c for _ in range(6) for c in "xy"]
    groups = np.repeat(np.arange(6), 2)
    split, how = S.make_split(labels, groups, (70, 10, 20), seed=0, grouped=True)
    assert how == "6 groups dealt 4/1/1"
    assert sorted(pd.Series(split).value_counts().to_dict().items()) == [("test", 2), ("train", 8), ("valid", 2)]


@pytest.mark.parametrize(("text", "out"), [("70/10/20", (70, 10, 20)), ("0.8/0.1/0.1", (80, 10, 10))])
def test_parse_fractions(text: str, out: tuple) -> None:
    assert S.parse_fractions(text) == out


def test_import_options_defaults_match_the_cli() -> None:
    from evalbench.cli import build_parser

    args = build_parser().parse_args(["data", "import", "DIR", "--name", "x"])
    for f in dataclasses.fields(ImportOptions):
        if f.name == "split_fractions":  # left None so that --help needs no numpy; the handler fills the default
            assert args.split_fractions is None and f.default == "70/10/20"
        elif f.name not in ("source", "name"):
            assert getattr(args, f.name) == f.default, f.name


def test_spec_header_holds_a_reproducing_command(tmp_path: Path) -> None:
    source = actors(tmp_path / "emo", n_actors=4, takes=1)
    run(tmp_path, source, label_from=r"_([A-Z]+)_", group_from=r"Actor_(\d+)", folds=2, seed=7)
    text = (tmp_path / "tasks" / "mine.yaml").read_text()
    assert f"evalbench data import {source.resolve()} --name mine --label-from '_([A-Z]+)_'" in text
    assert "--group-from 'Actor_(\\d+)' --folds 2 --seed 7 --force" in text
    assert yaml.safe_load(text)["description"].startswith(f"12 clips imported from {source.resolve()}")
