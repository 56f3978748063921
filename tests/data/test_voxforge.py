"""VoxForge builder: seeded upload-folder split on a miniature replica of the extracted archives."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from evalbench.data.prepare import prepare
from evalbench.data.verify import verify_task
from evalbench.errors import DataError
from evalbench.specs.task import load_task
from tests.data.helpers import TASKS, run_logmel, with_options
from tests.data.replicas.voxforge import LANGUAGES, write_voxforge

FOLDERS, CLIPS = 4, 3  # 6 languages x 4 uploads = 24 folders -> floor(16.8) = 16 / floor(3.6) = 3 / 5


@pytest.fixture(scope="module")
def voxforge(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A VoxForge replica and a data root where the task is prepared from it."""
    base = tmp_path_factory.mktemp("voxforge")
    source = write_voxforge(base / "source", folders=FOLDERS, clips=CLIPS)
    prepare(load_task("voxforge", TASKS), base / "data", source)
    return source, base / "data"


def test_folder_split_counts_lists_and_disjointness(voxforge: tuple[Path, Path]) -> None:
    source, data = voxforge
    task = load_task("voxforge", TASKS)
    dataset, built = prepare(task, data, source)
    assert not built  # idempotent
    meta, info = dataset.metadata, dataset.info
    assert info["group_counts"] == {"train": 16, "valid": 3, "test": 5}
    assert info["counts"] == {"train": 16 * CLIPS, "valid": 3 * CLIPS, "test": 5 * CLIPS}
    assert info["split_seed"] == 0 and "not identical" in info["split_note"]
    assert sorted(set(meta["label"])) == LANGUAGES == task.labels.classes
    assert info["clips_per_language"] == dict.fromkeys(LANGUAGES, FOLDERS * CLIPS)
    # Every upload folder sits on exactly one side; the published lists match the metadata.
    assert (meta.groupby("group")["split"].nunique() == 1).all()
    for split in ("train", "valid", "test"):
        listed = (data / "voxforge" / f"folders_{split}.txt").read_text().split()
        assert listed == sorted(set(meta.loc[meta["split"] == split, "group"]))
    # Same folder name in two languages: two groups.  flac-only uploads and ._ files are not clips.
    assert {"de/anonymous-20080504-qvg", "ru/anonymous-20080504-qvg"} <= set(meta["group"])
    assert info["folders_without_wav"] == len(LANGUAGES)
    assert not meta["file_name"].str.contains("flac|/\\._").any()
    assert meta["file_name"].iloc[0] == f"{meta['group'].iloc[0]}/wav/a0001.wav"


def test_seed_reproduces_and_changes_the_split(voxforge: tuple[Path, Path], tmp_path: Path) -> None:
    source, data = voxforge
    task = load_task("voxforge", TASKS)
    reference = prepare(task, data, source)[0].metadata
    again, built = prepare(task, tmp_path / "again", source)
    assert built and again.metadata.equals(reference)
    other, built = prepare(with_options(task, seed=1), tmp_path / "again", source)  # options are in the fingerprint
    assert built and other.info["split_seed"] == 1
    assert other.info["group_counts"] == {"train": 16, "valid": 3, "test": 5}
    assert not other.metadata["split"].equals(reference["split"])


def test_verify_is_clean_then_names_a_corrupted_file(voxforge: tuple[Path, Path], tmp_path: Path) -> None:
    source, data = voxforge
    task = load_task("voxforge", TASKS)
    report = verify_task(task, data)
    assert report.ok and report.n_files == 24 * CLIPS
    copy = shutil.copytree(source, tmp_path / "copy")
    prepare(task, tmp_path / "data", copy)
    bad = copy / "fr" / "anonymous-20080504-qvg" / "wav" / "a0002.wav"
    bad.write_bytes(b"")
    problems = verify_task(task, tmp_path / "data").problems
    assert [(Path(p.path), p.kind) for p in problems] == [(bad.resolve(), "empty")]


def test_malformed_layouts_raise_one_line_errors(tmp_path: Path) -> None:
    task = load_task("voxforge", TASKS)
    source = write_voxforge(tmp_path / "src", folders=1, clips=1, languages=LANGUAGES[:5])

    def fails() -> str:
        with pytest.raises(DataError) as exc:
            prepare(task, tmp_path / "data", source)
        assert "\n" not in str(exc.value)
        return str(exc.value)

    assert fails().endswith("ru: language folder not found; extract the ru upload archives there")
    (source / "ru").mkdir()
    (source / "ru" / "anonymous-20100101-abc.tgz").write_bytes(b"\x1f\x8b not extracted")
    assert "ru: no upload folder with wav/*.wav files" in fails()
    write_voxforge(source, folders=1, clips=1, languages=["ru"])
    assert "6 groups are too few for train/valid/test fractions 0.7/0.15" in fails()  # floor(0.15 x 6) = 0


def test_end_to_end_logmel_run(voxforge: tuple[Path, Path], tmp_path: Path) -> None:
    _, data = voxforge
    record = run_logmel("voxforge", data, tmp_path)
    assert 0.0 <= record["scores"]["test"]["accuracy"]["mean"] <= 1.0
