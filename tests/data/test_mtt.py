"""MagnaTagATune builder on a miniature replica: top-50 order, multi-hot, both splits, exclusions, errors, e2e."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from evalbench.data.prepare import open_task_data, prepare
from evalbench.data.verify import verify_task
from evalbench.errors import DataError
from evalbench.specs.task import load_task
from tests.data.helpers import TASKS, allow_absent_classes, run_logmel
from tests.data.replicas.mtt import BROKEN, USED_TAGS, write_mtt

TOP50 = load_task("mtt", TASKS).labels.classes


def short_spec(tasks_dir: Path, split: str = "directory") -> Path:
    """tasks/mtt.yaml with bounds fitting the 0.3-s replica clips, a 0.5-s unit and the given split."""
    tasks_dir.mkdir(parents=True, exist_ok=True)
    text = (TASKS / "mtt.yaml").read_text()
    text = re.sub(r"min_seconds: .*", "min_seconds: 0.1", text)
    text = re.sub(r"max_seconds: .*", "max_seconds: 1.0", text)
    text = re.sub(r"clip_seconds: .*", "clip_seconds: 0.5", text)
    text = text.replace('options: {split: directory, index_dir: ""}', f"options: {{split: {split}, index_dir: pons}}")
    (tasks_dir / "mtt.yaml").write_text(text)
    allow_absent_classes(tasks_dir / "mtt.yaml")  # the replica has a few of the 50 tags only
    return tasks_dir


@pytest.fixture(scope="module")
def replica(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_mtt(tmp_path_factory.mktemp("replica") / "mtt", TOP50, pons_dir="pons")


@pytest.fixture
def setup(tmp_path: Path, replica: Path) -> tuple:
    source = shutil.copytree(replica, tmp_path / "mtt")
    task = load_task("mtt", short_spec(tmp_path / "tasks"))
    return task, source, tmp_path / "data"


def test_directory_split_tags_and_exclusions(setup: tuple) -> None:
    task, source, data = setup
    dataset, built = prepare(task, data, source)
    meta, info = dataset.metadata, dataset.info
    assert built and meta["split"].value_counts().to_dict() == {"train": 72, "valid": 6, "test": 18}
    assert set(meta.loc[meta["split"] == "valid", "file_name"].str[0]) == {"c"}
    assert set(meta.loc[meta["split"] == "test", "file_name"].str[0]) == set("def")
    assert info["split"] == "directory" and info["classes"] == TOP50
    assert info["annotation_rows"] == 99 and info["annotation_tag_columns"] == 188
    assert [(e["file"], e["rows_removed"]) for e in info["excluded"]] == [(f, 1) for f in BROKEN.values()]
    assert not meta["file_name"].str.contains("norine_braun").any()
    assert info["clips_without_top_tag"] == {"train": 12, "valid": 1, "test": 3}
    unused = [t for t in TOP50 if t not in USED_TAGS]
    assert info["tags_without_test_positive"] == {"count": len(unused), "tags": unused}
    assert info["sample_rate"] == 16000
    data_ = open_task_data(task, data)
    assert data_.classes == TOP50 and data_.y.shape == (96, 50)
    annotations = pd.read_csv(source / "annotations_final.csv", sep="\t", dtype=str).set_index("mp3_path")
    for row in (0, 5, 40, 95):
        truth = annotations.loc[data_.files[row], TOP50].astype(int).to_numpy()
        assert np.array_equal(data_.y[row], truth)
    empty = meta.index[meta["label"] == ""]
    assert len(empty) == 16 and not data_.y[empty].any()
    assert meta.loc[0, "group"] == "artist_00-album_0-01-title_00"


def test_unquoted_annotation_file_reads_the_same(setup: tuple, tmp_path: Path) -> None:
    task, source, data = setup
    quoted = prepare(task, data, source)[0].metadata
    bare = write_mtt(tmp_path / "bare", TOP50, per_folder=6, quoted=False)
    assert '"' not in (bare / "annotations_final.csv").read_text()
    assert prepare(task, tmp_path / "data_bare", bare)[0].metadata.equals(quoted)


def test_pons_split(setup: tuple, tmp_path: Path) -> None:
    _, source, data = setup
    task = load_task("mtt", short_spec(tmp_path / "tasks_pons", split="pons"))
    dataset, _ = prepare(task, data, source)
    meta, info = dataset.metadata, dataset.info
    gt = {s: (source / "pons" / f"{s}_gt_mtt.tsv").read_text().split("\n")[:-1] for s in ("train", "val", "test")}
    ids = {s: [line.split("\t")[0] for line in lines] for s, lines in gt.items()}
    assert info["split"] == "pons" and "Pons" in info["split_rule"]
    assert info["counts"] == {"train": len(ids["train"]), "valid": len(ids["val"]), "test": len(ids["test"])}
    assert info["counts"] == {"train": 61, "valid": 9, "test": 10}
    assert sorted(meta.loc[meta["split"] == "valid", "clip_id"]) == sorted(ids["val"])
    assert info["clips_not_in_split"] == 19 and (meta["label"] != "").all()
    index = source / "pons" / "index_mtt.tsv"
    index.write_text("\n".join(index.read_text().split("\n")[1:]))  # drop the first clip from the index
    with pytest.raises(DataError) as exc:
        prepare(task, data, source)
    assert "train_gt_mtt.tsv: line 1: clip id 2 is not in" in str(exc.value) and "\n" not in str(exc.value)
    (source / "pons" / "val_gt_mtt.tsv").unlink()
    with pytest.raises(DataError, match=r"val_gt_mtt\.tsv: not found; split 'pons' needs"):
        prepare(task, data, source)


def test_idempotent_and_verify(setup: tuple) -> None:
    task, source, data = setup
    prepare(task, data, source)
    assert prepare(task, data, source)[1] is False
    report = verify_task(task, data)
    assert report.ok and report.n_files == 96 and len(report.excluded) == 3
    bad = source / "e" / "artist_e1-album_e-02-title_e1-30-59.mp3"
    bad.write_bytes(b"ID3" + bytes(40))
    report = verify_task(task, data)
    assert [(p.path, p.kind) for p in report.problems] == [(str(bad), "unreadable")]


def _raises(task, data, source, *fragments: str) -> None:
    with pytest.raises(DataError) as exc:
        prepare(task, data, source)
    message = str(exc.value)
    assert "\n" not in message and all(f in message for f in fragments), message


def test_malformed_layouts_raise_one_line(setup: tuple, tmp_path: Path) -> None:
    task, source, data = setup
    path = source / "annotations_final.csv"
    text = path.read_text()
    _raises(task, data, None, "--source")
    _raises(task, data, tmp_path / "tasks", "annotations_final.csv: not found")
    path.write_text(text.replace("\t", ","))
    _raises(task, data, source, "missing column(s)", "tab-separated")
    path.write_text(text.replace('"no vocals"', '"no-vocals"', 1))
    _raises(task, data, source, "missing column(s) ['no vocals']")
    lines = [line.split("\t") for line in text.split("\n")]
    lines[3][lines[0].index('"guitar"')] = '"2"'
    path.write_text("\n".join("\t".join(fields) for fields in lines))
    _raises(task, data, source, "row 4: tag 'guitar' is '2', expected 0 or 1")
    path.write_text(text)
    missing = source / "a" / "artist_a0-album_a-01-title_a0-0-29.mp3"
    missing.unlink()
    _raises(task, data, source, str(missing), "missing")
    for folder in "0123456789abcdef":
        shutil.rmtree(source / folder)
    _raises(task, data, source, "no mp3 folders 0-f", "mp3.zip")


def test_end_to_end_logmel(setup: tuple, tmp_path: Path) -> None:
    task, source, data = setup
    prepare(task, data, source)
    record = run_logmel("mtt", data, tmp_path, tasks_dir=Path(task.source_path).parent)
    assert record["task"]["primary_metric"] == "roc_auc" and record["task"]["classes"] == TOP50
    score = record["scores"]["test"]["roc_auc"]["mean"]
    assert np.isfinite(score) and 0.0 <= score <= 1.0
    skipped = len([t for t in TOP50 if t not in USED_TAGS])
    assert record["runs"][0]["skipped_classes"]["roc_auc"] == skipped
