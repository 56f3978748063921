"""GTZAN builder on a miniature replica: fault-filtered lists, known-bad jazz.00054, .au files, ._ junk."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from evalbench.data.prepare import open_task_data, prepare
from evalbench.data.verify import verify_task
from evalbench.errors import DataError
from evalbench.specs.task import TaskSpec, load_task
from tests.data.helpers import TASKS, lenient, run_logmel
from tests.data.replicas.gtzan import AU_GENRE, BROKEN, GENRES, write_gtzan


@pytest.fixture(scope="module")
def gtzan(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A replica with 4 / 2 / 2 listed clips and 1 unused clip per genre (+ the broken jazz.00054), prepared."""
    src = write_gtzan(tmp_path_factory.mktemp("gtzan_src"))
    data = tmp_path_factory.mktemp("gtzan_data")
    assert prepare(load_task("gtzan", TASKS), data, src)[1]
    return src, data


def test_lists_give_the_split_and_the_bad_file_is_excluded(gtzan: tuple[Path, Path]) -> None:
    src, data = gtzan
    td = open_task_data(load_task("gtzan", TASKS), data)
    info = td.dataset.info
    assert td.classes == GENRES and td.dataset.audio_root == src.resolve() and info["sample_rate"] == 22050
    assert info["counts"] == {"train": 40, "valid": 20, "test": 20} and td.n == 80
    assert info["excluded"] == [
        {
            "file": "jazz/jazz.00054.wav",
            "reason": load_task("gtzan", TASKS).dataset.exclude[0].reason,
            "rows_removed": 1,
        }
    ]
    assert "genres/" + BROKEN not in td.files
    assert info["unused_clips"] == 10 and info["published_counts"] == {"train": 443, "valid": 197, "test": 290}
    assert info["formats"] == {".au": 8, ".wav": 72}
    meta = td.dataset.metadata.set_index("list_entry")
    # A .wav entry resolves to the .au file a copy ships; the split is the list's, the label the folder's.
    row = meta.loc[f"{AU_GENRE}/{AU_GENRE}.00005.wav"]
    assert (row["file_name"], row["split"], row["label"]) == (
        f"genres/{AU_GENRE}/{AU_GENRE}.00005.au",
        "valid",
        AU_GENRE,
    )
    assert meta.loc["rock/rock.00007.wav", "split"] == "test" and meta.loc["rock/rock.00000.wav", "split"] == "train"
    assert not any("._" in f for f in td.files)
    for split in ("train", "valid", "test"):
        assert sorted(set(td.y[td.split == split].tolist())) == list(range(10))


def test_prepare_is_idempotent(gtzan: tuple[Path, Path]) -> None:
    src, data = gtzan
    assert not prepare(load_task("gtzan", TASKS), data, src)[1]


def test_lists_in_gtzan_split_subfolder(tmp_path: Path) -> None:
    src = write_gtzan(tmp_path / "src", sizes=(1, 1, 1), unused=0, split_dir="GTZAN_split")
    dataset, _ = prepare(load_task("gtzan", TASKS), tmp_path / "data", src)
    assert dataset.info["split_lists"]["train"] == "GTZAN_split/train_filtered.txt"
    assert dataset.info["counts"] == {"train": 10, "valid": 10, "test": 10} and dataset.info["unused_clips"] == 0


def test_verify_clean_then_names_a_corrupt_file(tmp_path: Path) -> None:
    src = write_gtzan(tmp_path / "src", sizes=(1, 1, 1), unused=0)
    task = lenient(load_task("gtzan", TASKS))
    prepare(task, tmp_path / "data", src)
    report = verify_task(task, tmp_path / "data")
    assert report.ok and report.n_files == 30
    assert [e["file"] for e in report.excluded] == ["jazz/jazz.00054.wav"]
    bad = src / "genres" / "metal" / "metal.00001.wav"
    bad.write_bytes(bad.read_bytes()[:2000])
    report = verify_task(task, tmp_path / "data")
    assert [(Path(p.path).name, p.kind) for p in report.problems] == [("metal.00001.wav", "truncated")]


def _drop_rule(task: TaskSpec) -> TaskSpec:
    return dataclasses.replace(task, dataset=dataclasses.replace(task.dataset, exclude=[]))


def _rule(task: TaskSpec, file: str) -> TaskSpec:
    rules = [dataclasses.replace(task.dataset.exclude[0], file=file)]
    return dataclasses.replace(task, dataset=dataclasses.replace(task.dataset, exclude=rules))


@pytest.mark.parametrize(
    ("au_genres", "rule", "formats"),
    [
        ((AU_GENRE,), "jazz/jazz.00054.wav", {".au": 3, ".wav": 27}),  # the spec's rule, the .wav copy
        (tuple(GENRES), "jazz/jazz.00054.wav", {".au": 30}),  # the spec's rule, the original .au archive
        (("jazz",), "jazz/jazz.00054.wav", {".au": 3, ".wav": 27}),  # only jazz in .au
        ((AU_GENRE,), "jazz/jazz.00054.au", {".au": 3, ".wav": 27}),  # a rule written .au, a .wav copy
        ((AU_GENRE,), "jazz.00054", {".au": 3, ".wav": 27}),  # a rule with no suffix at all
    ],
    ids=["wav-copy", "au-archive", "jazz-au", "au-rule-wav-copy", "suffixless-rule"],
)
def test_known_bad_rule_drops_jazz_00054_in_either_form(
    tmp_path: Path, au_genres: tuple[str, ...], rule: str, formats: dict[str, int]
) -> None:
    src = write_gtzan(tmp_path / "src", sizes=(1, 1, 1), unused=1, seconds=0.05, au_genres=au_genres)
    bad = src / "genres" / BROKEN
    form = ".au" if "jazz" in au_genres else ".wav"
    assert bad.with_suffix(form).is_file() and not bad.with_suffix({".au": ".wav", ".wav": ".au"}[form]).exists()
    task = _rule(load_task("gtzan", TASKS), rule)
    dataset, _ = prepare(task, tmp_path / "data", src)  # the broken header is never opened
    info = dataset.info
    assert info["excluded"] == [{"file": rule, "reason": task.dataset.exclude[0].reason, "rows_removed": 1}]
    assert not dataset.metadata["file_name"].str.contains("jazz.00054").any()
    assert info["counts"] == {"train": 10, "valid": 10, "test": 10} and info["formats"] == formats
    assert info["unused_clips"] == 10  # the excluded clip is on a list, so not "unused"
    # Without the rule the .au copy of jazz.00054 fails like the .wav one.
    with pytest.raises(DataError, match=rf"jazz\.00054\{form}: unreadable audio"):
        prepare(_drop_rule(task), tmp_path / "data2", src)


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda s, t: ((s / "valid_filtered.txt").unlink(), t), "valid_filtered.txt: not found (also looked in"),
        (lambda s, t: ((s / "genres" / "pop" / "pop.00001.wav").unlink(), t), "pop.00001.wav: on the split list"),
        (lambda s, t: (_append(s / "test_filtered.txt", "pop.00009.wav"), t), "line 11: 'pop.00009.wav' is not"),
        (lambda s, t: (_append(s / "test_filtered.txt", "pop/pop.00000.wav"), t), "'pop/pop.00000.wav' appears on"),
        (lambda s, t: (None, _drop_rule(t)), "jazz.00054.wav: unreadable audio"),
        (lambda s, t: ((s / "genres" / "disco" / "disco.00002.wav").write_bytes(b"junk"), t), "unreadable audio"),
        (lambda s, t: ((s / "genres").rename(s / "genres_original"), t), "genres: not found; point --source"),
    ],
)
def test_malformed_layout_gives_one_line_data_error(tmp_path: Path, damage, message: str) -> None:
    src = write_gtzan(tmp_path / "src", sizes=(2, 1, 1), unused=0, seconds=0.05)
    _, task = damage(src, load_task("gtzan", TASKS))
    with pytest.raises(DataError) as err:
        prepare(task, tmp_path / "data", src)
    assert message in str(err.value) and "\n" not in str(err.value)


def _append(path: Path, line: str) -> None:
    path.write_text(path.read_text() + line + "\n")


def test_end_to_end_logmel(gtzan: tuple[Path, Path], tmp_path: Path) -> None:
    _, data = gtzan
    record = run_logmel("gtzan", data, tmp_path)
    assert len(record["runs"]) == 1 and record["runs"][0]["fold"] is None
    assert record["runs"][0]["n"] == {"train": 40, "valid": 20, "test": 20}
    accuracy = record["scores"]["test"]["accuracy"]["mean"]
    assert isinstance(accuracy, float) and 0.0 <= accuracy <= 1.0
