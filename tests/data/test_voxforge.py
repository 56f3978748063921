"""VoxForge builder: seeded upload-folder split on miniature replicas of the extracted archives, nested or flat."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from evalbench.data.prepare import prepare
from evalbench.data.verify import verify_task
from evalbench.errors import DataError
from evalbench.specs.task import load_task
from tests.data.helpers import TASKS, run_logmel, with_options
from tests.data.replicas.voxforge import LANGUAGES, readme, upload_folder, url_list, write_voxforge

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
    assert "ru: no upload folder with .wav files" in fails()
    write_voxforge(source, folders=1, clips=1, languages=["ru"])
    assert "6 groups are too few for train/valid/test fractions 0.7/0.15" in fails()  # floor(0.15 x 6) = 0


def test_end_to_end_logmel_run(voxforge: tuple[Path, Path], tmp_path: Path) -> None:
    _, data = voxforge
    record = run_logmel("voxforge", data, tmp_path)
    assert 0.0 <= record["scores"]["test"]["accuracy"]["mean"] <= 1.0


# ---- the flat layout of the reference harness's download script: <upload>/wav/*.wav, no language folder ----


@pytest.fixture(scope="module")
def flat(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A flat replica: every upload folder directly under the source, labelled by its etc/README."""
    return write_voxforge(tmp_path_factory.mktemp("voxforge_flat") / "source", FOLDERS, CLIPS, flat=True)


def _nest(flat_source: Path, dest: Path) -> Path:
    """The same uploads moved into one folder per language (the language read from each README)."""
    shutil.copytree(flat_source, dest)
    for upload in sorted(p for p in dest.iterdir() if p.is_dir()):
        text = (upload / "etc" / "README").read_text()
        lang = next(line.split(":")[1].strip().lower() for line in text.splitlines() if line.startswith("Language"))
        (dest / lang).mkdir(exist_ok=True)
        upload.rename(dest / lang / upload.name)
    return dest


def test_flat_layout_labels_by_readme_and_splits_like_nested(flat: Path, tmp_path: Path) -> None:
    task = load_task("voxforge", TASKS)
    dataset, _ = prepare(task, tmp_path / "data", flat)
    meta, info = dataset.metadata, dataset.info
    assert info["layout"] == "flat" and info["language_source"] == "etc/README 'Language:'"
    assert info["group_counts"] == {"train": 16, "valid": 3, "test": 5}
    assert info["clips_per_language"] == dict.fromkeys(LANGUAGES, FOLDERS * CLIPS)
    assert info["folders_without_wav"] == len(LANGUAGES) and info["ignored_folders"] == []
    row = meta[meta["group"] == f"fr/{upload_folder(3, 1, flat=True)}"].iloc[0]
    assert (row["label"], row["file_name"]) == ("fr", f"{upload_folder(3, 1, flat=True)}/wav/a0001.wav")
    assert (meta["group"].str.split("/").str[0] == meta["label"]).all()
    assert not meta["file_name"].str.contains("flac|/\\._").any()
    # The same uploads nested by language: same groups, same split, same labels (paths gain the language folder).
    nested, _ = prepare(task, tmp_path / "data_nested", _nest(flat, tmp_path / "nested"))
    assert nested.info["layout"] == "nested"
    moved = nested.metadata.assign(file_name=nested.metadata["file_name"].str.split("/", n=1).str[1])
    assert sorted(moved.values.tolist()) == sorted(meta.values.tolist())


def test_flat_layout_readme_is_in_the_fingerprint(flat: Path, tmp_path: Path) -> None:
    source = shutil.copytree(flat, tmp_path / "src")
    task = load_task("voxforge", TASKS)
    prepare(task, tmp_path / "data", source)
    upload = upload_folder(1, 2, flat=True)  # an en upload
    (source / upload / "etc" / "README").write_text(readme(upload, "de").replace("Language: DE", "language:  de"))
    dataset, built = prepare(task, tmp_path / "data", source)
    assert built and set(dataset.metadata.loc[dataset.metadata["group"].str.endswith(upload), "label"]) == {"de"}
    assert dataset.info["clips_per_language"]["de"] == (FOLDERS + 1) * CLIPS


def test_flat_layout_url_list_is_exact(flat: Path, tmp_path: Path) -> None:
    source = shutil.copytree(flat, tmp_path / "src")
    lying = upload_folder(5, 1, flat=True)  # a ru upload whose README says EN: the URL list wins
    (source / lying / "etc" / "README").write_text(readme(lying, "en"))
    (source / "voxforge_urls.txt").write_text(url_list(FOLDERS))
    task = load_task("voxforge", TASKS)
    dataset, _ = prepare(task, tmp_path / "data", source)
    assert dataset.info["language_source"] == "voxforge_urls.txt (the TFDS archive list)"
    assert f"ru/{lying}" in set(dataset.metadata["group"])
    assert dataset.info["clips_per_language"] == dict.fromkeys(LANGUAGES, FOLDERS * CLIPS)
    extra = source / "stranger-20200101-zzz"
    shutil.copytree(source / lying, extra)
    with pytest.raises(DataError, match=f"{extra}: upload not in {source / 'voxforge_urls.txt'}"):
        prepare(task, tmp_path / "data", source)
    shutil.rmtree(extra)
    (source / "voxforge_urls.txt").write_text("www.repository.voxforge1.org/downloads/pt/Trunk/x/a-1-b.tgz\n")
    with pytest.raises(DataError, match="line 1: language 'pt' is not one of the task's"):
        prepare(task, tmp_path / "data", source)


def test_wav_files_anywhere_in_an_upload(flat: Path, tmp_path: Path) -> None:
    source = shutil.copytree(flat, tmp_path / "src")
    upload = source / upload_folder(2, 1, flat=True)  # es
    (upload / upload.name).mkdir()
    (upload / "wav").rename(upload / upload.name / "wav")  # <upload>/<upload>/wav/*.wav
    shutil.copy(upload / upload.name / "wav" / "a0001.wav", upload / "extra.wav")  # and one at the top
    task = load_task("voxforge", TASKS)
    for root in (source, _nest(source, tmp_path / "nested")):
        dataset, _ = prepare(task, tmp_path / f"data_{root.name}", root)
        files = set(dataset.metadata.loc[dataset.metadata["group"] == f"es/{upload.name}", "file_name"])
        prefix = "" if root == source else "es/"
        assert files == {f"{prefix}{upload.name}/extra.wav"} | {
            f"{prefix}{upload.name}/{upload.name}/wav/a{c + 1:04d}.wav" for c in range(CLIPS)
        }


def test_flat_layout_unknown_language_names_the_upload(tmp_path: Path) -> None:
    task = load_task("voxforge", TASKS)
    source = write_voxforge(tmp_path / "src", folders=1, clips=1, flat=True)
    upload = upload_folder(4, 0, flat=True)  # it

    def fails() -> str:
        with pytest.raises(DataError) as exc:
            prepare(task, tmp_path / "data", source)
        assert "\n" not in str(exc.value) and f"voxforge_urls.txt in {source}" in str(exc.value)
        return str(exc.value)

    readme_path = source / upload / "etc" / "README"
    readme_path.write_text(readme(upload, "pt_br"))
    assert f"{readme_path}: 'Language: PT_BR' of upload '{upload}' is not one of the task's languages" in fails()
    readme_path.write_text("User Name:anonymous\nGender: Male\n")
    assert f"{readme_path}: no 'Language:' line, so the language of upload '{upload}' is unknown" in fails()
    readme_path.unlink()
    assert f"{source / upload}: no etc/README, so the language of upload '{upload}' is unknown" in fails()
    shutil.rmtree(source / upload)
    with pytest.raises(DataError, match=r"no upload of language 'it' \(by etc/README 'Language:'\)"):
        prepare(task, tmp_path / "data", source)
