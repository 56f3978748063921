"""Bad specs and metadata: each is a one-line error naming the file, row and value, before any encoding.

Every case writes a small canonical dataset (``manifest`` builder) whose
``metadata.csv`` has one fault, then checks which command refuses it:
``data prepare`` (what the builder and the canonical format can see: path
aliases, a clip listed twice or in two splits, unreadable text), and
``tasks validate``, ``data verify`` and ``run`` (the metadata against the task
spec: labels, classes, splits, folds, groups).  ``run`` must stop before it
encodes anything, so no embedding is cached and no record is written.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from evalbench.cli import main
from tests.data.helpers import ENCODERS, write_audio

SR = 16000


def task_yaml(classes: str = "[a, b]", splits: str = "{type: fixed}", dataset: str = "") -> str:
    """Spec of task 'mine' over a manifest dataset."""
    return (
        f"name: mine\nversion: 1\ndescription: reliability case\ndataset: {{builder: manifest{dataset}}}\n"
        f"audio: {{sample_rate: {SR}, clip_seconds: 0.2}}\nlabels: {{type: single, classes: {classes}}}\n"
        f"splits: {splits}\nmetrics: [accuracy]\n"
    )


def base_rows(n: int = 12) -> list[dict[str, str]]:
    """``n`` clips alternating labels a/b; split train×8, valid×2, test×2 (of 12); each clip its own group."""
    rows = []
    for i in range(n):
        split = "train" if i < n * 2 // 3 else "valid" if i < n * 5 // 6 else "test"
        rows.append({"file_name": f"clips/c{i:02d}.wav", "label": "ab"[i % 2], "split": split, "group": f"g{i:02d}"})
    return rows


class Case:
    """A task folder with one fault: source (audio + metadata.csv), spec, data, cache and results folders."""

    def __init__(self, root: Path, rows: list[dict], spec: str, monkeypatch: pytest.MonkeyPatch) -> None:
        self.root = root
        self.source, self.tasks, self.data = root / "source", root / "tasks", root / "data"
        self.cache, self.results = root / "cache", root / "results"
        for var, path in (("DATA", self.data), ("CACHE", self.cache), ("RESULTS", self.results)):
            monkeypatch.setenv(f"EVALBENCH_{var}", str(path))
        monkeypatch.setenv("EVALBENCH_TASKS_DIR", str(self.tasks))
        files = sorted({r["file_name"] for r in rows})
        for i, name in enumerate(files):  # distinct audio per file: no accidental duplicate-audio error
            write_audio(self.source / name, 0.2, SR, freq=200.0 + 37.0 * i, seed=i)
        self.write(rows, spec)

    @property
    def metadata(self) -> Path:
        return self.source / "metadata.csv"

    @property
    def prepared_metadata(self) -> Path:
        return self.data / "mine" / "metadata.csv"

    def write(self, rows: list[dict] | None = None, spec: str | None = None) -> None:
        if rows is not None:
            pd.DataFrame(rows).to_csv(self.metadata, index=False)
        if spec is not None:
            self.tasks.mkdir(exist_ok=True)
            (self.tasks / "mine.yaml").write_text(spec)

    def cli(self, capsys: pytest.CaptureFixture, *args: str) -> tuple[int, str]:
        """Run ``evalbench ARGS`` with this case's folders; return the exit code and stdout+stderr."""
        capsys.readouterr()
        code = main([*args, "--tasks-dir", str(self.tasks), "--data-root", str(self.data)])
        out = capsys.readouterr()
        assert "Traceback" not in out.out + out.err
        return code, out.out + out.err

    def prepare(self, capsys: pytest.CaptureFixture) -> tuple[int, str]:
        return self.cli(capsys, "data", "prepare", "mine", "--source", str(self.source), "--force")

    def run(self, capsys: pytest.CaptureFixture) -> tuple[int, str]:
        args = ["run", "--encoder", "logmel", "--tasks", "mine", "--seeds", "1", "--encoders-dir", str(ENCODERS)]
        return self.cli(capsys, *args, "--cache-dir", str(self.cache), "--results-dir", str(self.results))

    def assert_refused_everywhere(self, capsys: pytest.CaptureFixture, *words: str) -> None:
        """``tasks validate``, ``data verify`` and ``run`` all exit 2 with ``words``; nothing is encoded or recorded."""
        code, text = self.prepare(capsys)
        assert code == 0, text  # the builder copies metadata; the spec checks come next
        for command in (("tasks", "validate"), ("data", "verify", "mine")):
            code, text = self.cli(capsys, *command)
            assert code == 2, (command, text)
            for w in words:
                assert w in text, (command, w, text)
        code, text = self.run(capsys)
        assert code == 2, text
        for w in words:
            assert w in text, ("run", w, text)
        assert not list(self.cache.rglob("*.npy")), "run encoded clips before refusing the metadata"
        assert not self.results.exists() or not list(self.results.rglob("*.json"))


@pytest.fixture
def make(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """Factory: ``make(rows, spec)`` → :class:`Case`."""

    def factory(rows: list[dict], spec: str | None = None) -> Case:
        return Case(tmp_path, rows, spec or task_yaml(), monkeypatch)

    return factory


def test_the_clean_case_passes_every_check(make, capsys) -> None:
    """The baseline of every case below: prepare, validate, verify and run all succeed."""
    case = make(base_rows())
    assert case.prepare(capsys)[0] == 0
    assert case.cli(capsys, "tasks", "validate")[0] == 0
    assert case.cli(capsys, "data", "verify", "mine")[0] == 0
    code, text = case.run(capsys)
    assert code == 0 and (case.results / "logmel" / "mine.linear.json").is_file(), text


def test_label_in_test_that_never_occurs_in_train(make, capsys) -> None:
    rows = base_rows()
    rows[-1]["label"] = "c"  # the last test clip: a class with no training clip
    case = make(rows, task_yaml(classes="null"))  # vocabulary from the labels, so 'c' is a class
    where = str(case.prepared_metadata)
    case.assert_refused_everywhere(capsys, where, "class 'c' has no clips in split 'train'", "clips: test 1")


def test_declared_class_with_no_clips(make, capsys) -> None:
    case = make(base_rows(), task_yaml(classes="[a, b, c]"))
    case.assert_refused_everywhere(capsys, str(case.prepared_metadata), "class 'c'", "none at all")


def test_label_outside_the_declared_vocabulary(make, capsys) -> None:
    rows = base_rows()
    rows[4]["label"] = "B"  # a typo of 'b', row 6 of the CSV (header is row 1)
    case = make(rows)
    case.assert_refused_everywhere(capsys, str(case.prepared_metadata), "row 6: label 'B' is not one of")


def test_duplicate_file_entry_is_refused_at_prepare(make, capsys) -> None:
    rows = base_rows()
    rows.append(dict(rows[2]))  # the same clip, same split, listed twice
    case = make(rows)
    code, text = case.prepare(capsys)
    assert code == 2, text
    assert f"{case.metadata}: row 14" in text and "clips/c02.wav" in text and "(row 4)" in text, text
    assert not (case.data / "mine" / "dataset.json").exists()


def test_file_listed_in_two_splits_names_both_splits(make, capsys) -> None:
    rows = base_rows()
    rows.append({**rows[1], "split": "test"})  # a training clip also listed as test
    case = make(rows)
    code, text = case.prepare(capsys)
    assert code == 2, text
    assert "clips/c01.wav" in text and "row 14" in text and "row 3" in text, text
    assert "split 'train'" in text and "split 'test'" in text, text


@pytest.mark.parametrize("alias", ["./clips/c01.wav", "clips//c01.wav", "clips/../clips/c01.wav"])
def test_path_aliases_count_as_the_same_file(make, capsys, alias: str) -> None:
    rows = base_rows()
    rows.append({**rows[1], "file_name": alias, "split": "test"})
    case = make(rows)
    code, text = case.prepare(capsys)
    assert code == 2 and alias in text and "clips/c01.wav" in text and "split 'test'" in text, text


def test_missing_fold(make, capsys) -> None:
    rows = [{k: v for k, v in r.items() if k != "split"} | {"fold": str(i % 2 + 1)} for i, r in enumerate(base_rows())]
    case = make(rows, task_yaml(splits="{type: folds, folds: 3}"))
    case.assert_refused_everywhere(capsys, str(case.prepared_metadata), "fold(s) [3] have no clips", "splits.folds")


def test_missing_split(make, capsys) -> None:
    rows = [r | {"split": "train"} if r["split"] == "valid" else r for r in base_rows()]
    case = make(rows)
    case.assert_refused_everywhere(capsys, str(case.prepared_metadata), "split(s) ['valid'] have no clips")


def test_unknown_split_value_names_the_row(make, capsys) -> None:
    rows = base_rows()
    rows[10]["split"] = "tst"
    case = make(rows)
    case.assert_refused_everywhere(capsys, str(case.prepared_metadata), "row 12", "'tst'", "train, valid or test")


def test_non_integer_fold_names_the_row(make, capsys) -> None:
    rows = [{k: v for k, v in r.items() if k != "split"} | {"fold": str(i % 2 + 1)} for i, r in enumerate(base_rows())]
    rows[7]["fold"] = "two"
    case = make(rows, task_yaml(splits="{type: folds, folds: 2}"))
    code, text = case.prepare(capsys)  # the canonical reader refuses it: folds are integers
    assert code == 2 and "row 9" in text and "'two'" in text and "fold" in text, text


def test_group_on_both_sides_of_a_fixed_split(make, capsys) -> None:
    rows = base_rows()
    rows[-1]["group"] = rows[0]["group"]  # speaker g00 in train and in test
    case = make(rows)
    case.assert_refused_everywhere(
        capsys, str(case.prepared_metadata), "group 'g00'", "clips/c00.wav", "clips/c11.wav", "allow_group_overlap"
    )
    case.write(spec=task_yaml(dataset=", allow_group_overlap: true"))  # declared as intended: accepted
    assert case.cli(capsys, "tasks", "validate")[0] == 0


def test_blank_group_cells_are_no_group(make, capsys) -> None:
    """A clip without a group (empty cell) is its own source: blanks in several splits are not one leaking group."""
    rows = [r | {"group": ""} if i % 3 == 0 else r for i, r in enumerate(base_rows())]  # blanks in train and valid
    case = make(rows)
    assert case.prepare(capsys)[0] == 0
    code, text = case.cli(capsys, "tasks", "validate")
    assert code == 0, text


def test_group_spanning_folds(make, capsys) -> None:
    rows = [{k: v for k, v in r.items() if k != "split"} | {"fold": str(i % 3 + 1)} for i, r in enumerate(base_rows())]
    rows[4]["group"] = rows[0]["group"]  # c00 is in fold 1, c04 in fold 2
    case = make(rows, task_yaml(splits="{type: folds, folds: 3}"))
    case.assert_refused_everywhere(capsys, "group 'g00'", "fold 1", "fold 2")


def test_non_utf8_metadata_is_named(make, capsys) -> None:
    case = make(base_rows())
    raw = case.metadata.read_bytes().replace(b"clips/c03.wav", "clips/c\xe93.wav".encode("latin-1"))
    case.metadata.write_bytes(raw)
    code, text = case.prepare(capsys)
    assert code == 2 and str(case.metadata) in text and "utf-8" in text.lower(), text
    row = next(i for i, r in enumerate(base_rows(), start=1) if r["file_name"] == "clips/c03.wav")
    assert f"line {row + 1} (row {row} after the header)" in text and "b'\\xe9'" in text, text
    assert len([line for line in text.splitlines() if "error" in line]) == 1


def test_metadata_without_a_label_column_names_the_file(make, capsys) -> None:
    rows = [{k: v for k, v in r.items() if k != "label"} for r in base_rows()]
    case = make(rows)
    code, text = case.prepare(capsys)
    assert code == 2 and f"{case.metadata}: no 'label' column" in text, text


@pytest.mark.parametrize(("bound", "value"), [("min_seconds", ".nan"), ("max_seconds", ".nan"), ("min_seconds", "-1")])
def test_nan_or_negative_duration_bound_in_the_spec_is_refused(make, capsys, bound: str, value: str) -> None:
    """A NaN bound compares false with every duration, so it would switch the too-short/too-long check off."""
    case = make(base_rows(), task_yaml(dataset=f", {bound}: {value}"))
    code, text = case.cli(capsys, "tasks", "validate")
    assert code == 2 and str(case.tasks / "mine.yaml") in text and f"dataset.{bound}" in text, text
