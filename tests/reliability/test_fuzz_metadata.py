"""Fuzzing metadata tables: exact task data or an error naming the file.

The ``manifest`` builder (the canonical CSV a user writes for a private
dataset) → :func:`prepare` → :func:`open_task_data` gets random CSV content
(missing columns, empty or unknown labels, duplicate and aliased paths, bad
split/fold values, NaN, unicode, garbage bytes).  Either task data whose
labels, splits and files are exactly what the table says (checked against an
independent decoding of the CSV), or an :class:`EvalbenchError` naming the file.
"""

from __future__ import annotations

import csv
import io
import math
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import yaml
from hypothesis import event, given
from hypothesis import strategies as st

from evalbench.data.prepare import open_task_data, prepare
from evalbench.errors import EvalbenchError
from evalbench.specs.task import parse_task_file
from tests.reliability.fuzzing import FUZZ, fresh

N_AUDIO = 13  # c0..c12.wav; c12 has the same bytes as c0 (a duplicate clip)


@pytest.fixture(scope="module")
def audio_source(scratch: Path) -> Path:
    """Tiny distinct WAVs ``c0``–``c11`` and a byte-identical copy of ``c0`` as ``c12``."""
    src = scratch / "audio-source"
    src.mkdir()
    for i in range(N_AUDIO - 1):
        t = np.arange(400) / 8000
        sf.write(src / f"c{i}.wav", (0.1 * np.sin(2 * np.pi * 200 * (i + 1) * t)).astype(np.float32), 8000)
    (src / "c12.wav").write_bytes((src / "c0.wav").read_bytes())
    return src


FILE_NAMES = [f"c{i}.wav" for i in range(N_AUDIO)] + ["./c1.wav", "c2.wav ", "x/../c3.wav", "missing.wav",
    "../c0.wav", "/etc/hostname", "", "ç♪.wav", "c1.WAV", "a,b.wav"]  # fmt: skip
LABELS = ["a", "b", "c", "", "d", "a,b", "b,c", "nan", "NaN", "1.5", "-2", "inf", "1e400", " a", "é", "0"]
SPLITS = ["train", "valid", "test", "", "Train", "nan", "validation", "test "]
FOLDS = ["1", "2", "3", "0", "4", "-1", "x", "", "1.0", "nan", "99999999999999999999"]
TASK_VARIANTS = {
    "single": ({"type": "single", "classes": ["a", "b", "c"]}, ["accuracy", "roc_auc"]),
    "single-found": ({"type": "single"}, ["accuracy"]),
    "binary": ({"type": "binary", "classes": ["a", "b"]}, ["roc_auc"]),
    "multilabel": ({"type": "multilabel", "classes": ["a", "b", "c"], "allow_missing_in_train": ["c"]}, ["map"]),
    "regression": ({"type": "regression"}, ["mae"]),
}


@st.composite
def metadata_cases(draw: st.DrawFn) -> tuple[str, str, bytes]:
    """``(label variant, split type, metadata.csv bytes)``.

    Half the tables are random rows under random columns; the other half start
    from a valid table of 12 clips and get 0–2 random cell edits, so that
    acceptance (and with it the exactness check) is exercised as well.
    """
    variant = draw(st.sampled_from(sorted(TASK_VARIANTS)))
    split_type = draw(st.sampled_from(["fixed", "folds"]))
    if draw(st.integers(0, 9)) == 0:  # not a table at all
        return variant, split_type, draw(st.binary(max_size=120))
    columns = ["file_name", "label"]  # no label column: test_a_manifest_without_a_label_column...
    columns += draw(st.lists(st.sampled_from(["split", "fold", "group", "extra", "label "]), unique=True, max_size=4))
    good = draw(st.booleans())
    if good or draw(st.booleans()):
        columns.append("split" if split_type == "fixed" else "fold")
    columns = list(dict.fromkeys(draw(st.permutations(columns))))
    cells = {
        "file_name": st.sampled_from(FILE_NAMES),
        "label": st.sampled_from(LABELS) | st.text(max_size=4),
        "split": st.sampled_from(SPLITS),
        "fold": st.sampled_from(FOLDS),
        "group": st.sampled_from(["g1", "g2", "", "g1 "]),
        "extra": st.text(max_size=5),
        "label ": st.sampled_from(LABELS),
    }
    if good:  # every class in every training portion: labels cycle fastest, splits and folds in blocks of 3
        names = "ab" if variant == "binary" else "abc"
        rows = [
            {
                "file_name": f"c{i}.wav",
                "label": str(0.5 * i) if variant == "regression" else names[i % len(names)],
                "split": ["train", "train", "valid", "test"][i // 3],
                "fold": str(i // 3 % 3 + 1),
                "group": f"g{i}",
                "extra": "x",
                "label ": "y",
            }
            for i in range(12)
        ]
        rows = [{c: r[c] for c in columns} for r in rows]
        for _ in range(draw(st.integers(0, 2))):
            column = draw(st.sampled_from(columns))
            rows[draw(st.integers(0, 11))][column] = draw(cells[column])
    else:
        rows = [{c: draw(cells[c]) for c in columns} for _ in range(draw(st.integers(0, 14)))]
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(columns)
    writer.writerows([[r[c] for c in columns] for r in rows])
    return variant, split_type, buf.getvalue().encode("utf-8")


def _task_yaml(folder: Path, variant: str, split_type: str) -> Path:
    labels, metrics = TASK_VARIANTS[variant]
    splits = {"type": "fixed"} if split_type == "fixed" else {"type": "folds", "folds": 3}
    spec = {
        "name": "meta",
        "version": 1,
        "description": "fuzzed metadata",
        "dataset": {"builder": "manifest"},
        "audio": {"sample_rate": 8000, "clip_seconds": 0.05},
        "labels": labels,
        "splits": splits,
        "metrics": metrics,
    }
    path = folder / "meta.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path


def _oracle_rows(raw: bytes) -> list[dict[str, str]]:
    """The CSV decoded independently of pandas: one dict per data row (all strings)."""
    return list(csv.DictReader(io.StringIO(raw.decode("utf-8"))))


@FUZZ
@given(case=metadata_cases())
def test_random_metadata_gives_exact_task_data_or_an_error_naming_the_file(
    scratch: Path, audio_source: Path, case: tuple[str, str, bytes]
) -> None:
    variant, split_type, raw = case
    folder = fresh(scratch, "meta")
    source, data_root = folder / "source", folder / "data"
    source.mkdir()
    for f in audio_source.iterdir():
        (source / f.name).symlink_to(f)
    (source / "metadata.csv").write_bytes(raw)
    task = parse_task_file(_task_yaml(folder, variant, split_type))
    try:
        prepare(task, data_root, source)
        data = open_task_data(task, data_root)
    except EvalbenchError as exc:
        message = str(exc)
        named = "metadata.csv" in message or str(source) in message
        assert named, f"the error names no file: {message}"
        event("metadata refused")
        return
    event("metadata accepted")
    # accepted: every row is exactly what the table says
    rows = _oracle_rows(raw)
    assert data.n == len(rows) > 0
    assert len(set(data.files)) == data.n
    for i, row in enumerate(rows):
        assert (source / data.files[i]).resolve() == (source / row["file_name"].strip()).resolve()
        label = row["label"]
        if variant == "regression":
            assert data.y[i] == float(label) and math.isfinite(data.y[i])
        elif variant == "multilabel":
            present = {data.classes[c] for c in np.flatnonzero(data.y[i])}
            assert present == {c for c in label.split(",") if c}
        else:
            assert data.classes[data.y[i]] == label
        if split_type == "fixed":
            assert data.split[i] == row["split"] in ("train", "valid", "test")
        else:
            assert data.fold[i] == int(row["fold"]) and 1 <= data.fold[i] <= 3
    if variant != "regression":
        assert len(data.classes) >= 2 and len(set(data.classes)) == len(data.classes)


@pytest.mark.parametrize(
    "csv",
    [
        "file_name,split\nc0.wav,train\n",  # no label column
        "file_name,label,split\nc0.wav,a,train\n./c0.wav,b,test\n",  # one file, two rows (via an alias)
    ],
    ids=["no-label-column", "alias-in-two-rows"],
)
def test_prepare_time_metadata_errors_name_the_metadata_file(tmp_path: Path, audio_source: Path, csv: str) -> None:
    source = tmp_path / "source"
    source.mkdir()
    (source / "c0.wav").symlink_to(audio_source / "c0.wav")
    (source / "metadata.csv").write_text(csv)
    task = parse_task_file(_task_yaml(tmp_path, "single", "fixed"))
    with pytest.raises(EvalbenchError, match=r"metadata\.csv"):
        prepare(task, tmp_path / "data", source)
