"""`download_task` against a loopback HTTP server: resume, retries, checksums, safe extraction, join, no-op reruns."""

from __future__ import annotations

import errno
import hashlib
import io
import os
import re
import tarfile
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
import yaml

from evalbench.data import download as dl
from evalbench.data.download import DownloadError, download_task, extract_archive
from evalbench.data.metadata import read_prepared
from evalbench.errors import DatasetNotReadyError, DiskFullError, EvalbenchError
from evalbench.specs.task import load_task
from tests.data.helpers import run_logmel, write_audio
from tests.data.loopback import Server, loopback_server, no_waits_no_proxies

CLASSES = ["low", "high"]
SPLIT_SIZES = {"train": 6, "valid": 2, "test": 2}  # clips per class


# -- loopback server -------------------------------------------------------------------------------------------------


@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch) -> Iterator[Server]:
    """The loopback server, with no backoff waits and no proxies."""
    no_waits_no_proxies(monkeypatch)
    with loopback_server() as state:
        yield state


# -- tiny dataset, archives and specs --------------------------------------------------------------------------------


def make_dataset(folder: Path) -> Path:
    """``folder/metadata.csv`` + 20 half-second WAVs: 2 classes (low/high pitch) × train 6 / valid 2 / test 2."""
    rows = []
    for c, label in enumerate(CLASSES):
        for s, (split, n) in enumerate(SPLIT_SIZES.items()):
            for i in range(n):
                name = f"{label}_{split}_{i}.wav"  # distinct audio per file: identical clips across splits are refused
                write_audio(folder / "audio" / name, 0.5, 16000, freq=220.0 * (1 + 3 * c) + 7 * i, seed=10 * s + i)
                rows.append({"file_name": f"audio/{name}", "label": label, "split": split})
    pd.DataFrame(rows).to_csv(folder / "metadata.csv", index=False)
    return folder


@pytest.fixture(scope="session")
def dataset_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny canonical dataset, as ``<tmp>/mydata``."""
    return make_dataset(tmp_path_factory.mktemp("src") / "mydata")


def archive_bytes(folder: Path, fmt: str, extra: dict[str, bytes] | None = None) -> bytes:
    """``folder`` packed under its own name as zip or tar[.gz|.bz2|.xz], plus raw ``extra`` members."""
    buf = io.BytesIO()
    files = sorted(p for p in folder.rglob("*") if p.is_file())
    if fmt == "zip":
        with zipfile.ZipFile(buf, "w") as zf:
            for p in files:
                zf.write(p, f"{folder.name}/{p.relative_to(folder).as_posix()}")
            for name, data in (extra or {}).items():
                zf.writestr(name, data)
    else:
        mode = {"tar": "w", "tar.gz": "w:gz", "tar.bz2": "w:bz2", "tar.xz": "w:xz"}[fmt]
        with tarfile.open(fileobj=buf, mode=mode) as tf:
            for p in files:
                tf.add(p, f"{folder.name}/{p.relative_to(folder).as_posix()}")
            for name, data in (extra or {}).items():
                info = tarfile.TarInfo(name)
                info.size = len(data)
                tf.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def write_task(tasks_dir: Path, source: dict, name: str = "mydata", builder: str = "manifest") -> Path:
    """A task YAML over the tiny dataset whose ``dataset.source`` is ``source``."""
    tasks_dir.mkdir(parents=True, exist_ok=True)
    spec = {
        "name": name,
        "version": 1,
        "description": "tiny downloadable dataset",
        "dataset": {"builder": builder, "source": source},
        "audio": {"sample_rate": 16000, "clip_seconds": 0.5},
        "labels": {"type": "single", "classes": CLASSES},
        "splits": {"type": "fixed"},
        "metrics": ["accuracy"],
    }
    (tasks_dir / f"{name}.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    return tasks_dir


def serve_archive(server: Server, dataset_dir: Path, tmp_path: Path, fmt: str = "zip", pin: bool = True) -> bytes:
    """Serve ``mydata.<fmt>``, write the matching task into ``tmp_path/tasks`` and return the archive bytes."""
    data = archive_bytes(dataset_dir, fmt)
    server.files[f"mydata.{fmt}"] = data
    entry = {"url": server.url(f"mydata.{fmt}"), **({"sha256": sha(data)} if pin else {})}
    write_task(tmp_path / "tasks", {"homepage": "https://example.org", "download": [entry], "root": "mydata"})
    return data


def fetch_task(tmp_path: Path, name: str = "mydata", force: bool = False) -> Path:
    return download_task(load_task(name, tmp_path / "tasks"), tmp_path / "data", force=force)


# -- tests -----------------------------------------------------------------------------------------------------------


def test_download_extract_prepare_then_run(server: Server, dataset_dir: Path, tmp_path: Path) -> None:
    data = serve_archive(server, dataset_dir, tmp_path)
    root = fetch_task(tmp_path)
    home = tmp_path / "data" / "sources" / "mydata"
    assert root == home / "extracted" / "mydata"
    assert (home / "downloads" / "mydata.zip").read_bytes() == data
    assert not list(home.glob(".extracting-*")) and not list((home / "downloads").glob("*.part"))
    prepared = read_prepared(tmp_path / "data" / "mydata")
    assert len(prepared.metadata) == 20 and prepared.audio_root == root.resolve()
    assert server.log == [("mydata.zip", None, len(data))]

    assert fetch_task(tmp_path) == root  # rerun: no request, nothing re-extracted
    assert len(server.log) == 1
    record = run_logmel("mydata", tmp_path / "data", tmp_path, tmp_path / "tasks")
    assert record["task"]["classes"] == CLASSES and record["scores"]["test"]["accuracy"]["mean"] >= 0.5


@pytest.mark.parametrize("fmt", ["tar", "tar.gz", "tar.bz2", "tar.xz", "zip"])
def test_each_archive_format_extracts(dataset_dir: Path, tmp_path: Path, fmt: str) -> None:
    archive = tmp_path / f"a.{fmt}"
    archive.write_bytes(archive_bytes(dataset_dir, fmt))
    extract_archive(archive, tmp_path / "out")
    got = sorted(p.relative_to(tmp_path / "out" / "mydata").as_posix() for p in (tmp_path / "out").rglob("*.*"))
    assert len(got) == 21 and got[-1] == "metadata.csv"
    assert (tmp_path / "out" / "mydata" / "audio" / "low_train_0.wav").read_bytes() == (
        dataset_dir / "audio" / "low_train_0.wav"
    ).read_bytes()


def test_checksum_mismatch_keeps_nothing(server: Server, dataset_dir: Path, tmp_path: Path) -> None:
    data = archive_bytes(dataset_dir, "tar.gz")
    server.files["mydata.tar.gz"] = data
    url = server.url("mydata.tar.gz")
    write_task(tmp_path / "tasks", {"download": [{"url": url, "sha256": "ab" * 32}], "root": "mydata"})
    with pytest.raises(DownloadError) as err:
        fetch_task(tmp_path)
    msg = str(err.value)
    assert "\n" not in msg and url in msg and "ab" * 32 in msg and sha(data) in msg
    home = tmp_path / "data" / "sources" / "mydata"
    assert not (home / "extracted").exists() and list((home / "downloads").iterdir()) == []
    assert not (tmp_path / "data" / "mydata").exists()


def test_size_mismatch_is_an_error(server: Server, dataset_dir: Path, tmp_path: Path) -> None:
    server.files["mydata.zip"] = data = archive_bytes(dataset_dir, "zip")
    entry = {"url": server.url("mydata.zip"), "size": len(data) + 5}
    write_task(tmp_path / "tasks", {"download": [entry], "root": "mydata"})
    with pytest.raises(DownloadError, match=f"expected {len(data) + 5} bytes, got {len(data)}"):
        fetch_task(tmp_path)


def test_interrupted_transfer_resumes_with_range(server: Server, dataset_dir: Path, tmp_path: Path) -> None:
    data = serve_archive(server, dataset_dir, tmp_path)
    cut = len(data) // 3
    server.cut_first["mydata.zip"] = cut
    fetch_task(tmp_path)  # the retry inside the same call resumes
    assert [(r, n) for _, r, n in server.log] == [(None, cut), (f"bytes={cut}-", len(data) - cut)]
    assert server.sent() < 1.5 * len(data)
    assert (tmp_path / "data" / "sources" / "mydata" / "downloads" / "mydata.zip").read_bytes() == data


def test_failed_call_leaves_a_part_the_next_call_resumes(
    server: Server, dataset_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = serve_archive(server, dataset_dir, tmp_path)
    cut = len(data) // 2
    server.cut_first["mydata.zip"] = cut
    monkeypatch.setattr(dl, "RETRIES", 0)
    with pytest.raises(DownloadError, match=r"failed after 1 attempts .*rerun the command to resume"):
        fetch_task(tmp_path)
    part = tmp_path / "data" / "sources" / "mydata" / "downloads" / "mydata.zip.part"
    assert part.stat().st_size == cut
    fetch_task(tmp_path)
    assert server.log[-1] == ("mydata.zip", f"bytes={cut}-", len(data) - cut)
    assert not part.exists() and server.sent() < 1.5 * len(data)


def test_server_ignoring_range_restarts_cleanly(server: Server, dataset_dir: Path, tmp_path: Path) -> None:
    data = serve_archive(server, dataset_dir, tmp_path)
    server.ignore_range = True
    downloads = tmp_path / "data" / "sources" / "mydata" / "downloads"
    downloads.mkdir(parents=True)
    (downloads / "mydata.zip.part").write_bytes(b"garbage that must not stay at the front" * 10)
    fetch_task(tmp_path)  # appending would break the pinned hash
    assert server.log == [("mydata.zip", "bytes=390-", len(data))]
    assert (downloads / "mydata.zip").read_bytes() == data


def test_http_404_fails_at_once(server: Server, tmp_path: Path) -> None:
    write_task(tmp_path / "tasks", {"download": [{"url": server.url("gone.zip")}]})
    with pytest.raises(DownloadError, match=r"gone\.zip: HTTP 404"):
        fetch_task(tmp_path)
    assert len(server.log) == 1


def test_unpinned_hash_warns_with_the_computed_hash(
    server: Server, dataset_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    data = serve_archive(server, dataset_dir, tmp_path, fmt="tar.gz", pin=False)
    fetch_task(tmp_path)
    err = capsys.readouterr().err
    assert "not pinned in the spec" in err and sha(data) in err
    fetch_task(tmp_path)  # a verified file is neither fetched nor reported again
    assert len(server.log) == 1 and "not pinned" not in capsys.readouterr().err


def test_force_fetches_and_extracts_again(server: Server, dataset_dir: Path, tmp_path: Path) -> None:
    serve_archive(server, dataset_dir, tmp_path)
    root = fetch_task(tmp_path)
    (root / "stray.txt").write_text("not part of the archive")
    fetch_task(tmp_path, force=True)
    assert len(server.log) == 2 and not (root / "stray.txt").exists() and (root / "metadata.csv").is_file()


def test_interrupted_extraction_is_cleaned_and_redone(server: Server, dataset_dir: Path, tmp_path: Path) -> None:
    serve_archive(server, dataset_dir, tmp_path)
    root = fetch_task(tmp_path)
    home = tmp_path / "data" / "sources" / "mydata"
    (home / "extracted.json").unlink()  # as if killed between the rename and the marker
    (root / "metadata.csv").unlink()
    (home / ".extracting-leftover").mkdir()
    (home / ".extracting-leftover" / "half.wav").write_bytes(b"RIFF")
    assert fetch_task(tmp_path) == root
    assert (root / "metadata.csv").is_file() and not (home / ".extracting-leftover").exists()
    assert (home / "extracted.json").is_file() and len(server.log) == 1  # download was verified, not refetched


def _zip_with(member: str) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("mydata/metadata.csv", "file_name,label,split\n")
        zf.writestr(member, "pwned")
    return buf.getvalue()


def _tar_with_symlink(target: str) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tf:
        info = tarfile.TarInfo("mydata/link")
        info.type, info.linkname = tarfile.SYMTYPE, target
        tf.addfile(info)
    return buf.getvalue()


def _tar_with(kind: bytes, linkname: str = "") -> bytes:
    """A tar holding one member of type ``kind`` (hard link, character device, fifo)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tf:
        info = tarfile.TarInfo("mydata/odd")
        info.type, info.linkname = kind, linkname
        tf.addfile(info)
    return buf.getvalue()


@pytest.mark.parametrize(
    ("name", "data", "why"),
    [
        ("hard.tar.gz", _tar_with(tarfile.LNKTYPE, "../../etc/passwd"), "'mydata/odd' (link to '../../etc/passwd'"),
        ("dev.tar.gz", _tar_with(tarfile.CHRTYPE), "'mydata/odd' (device or fifo)"),
        ("fifo.tar.gz", _tar_with(tarfile.FIFOTYPE), "'mydata/odd' (device or fifo)"),
        ("slip.zip", _zip_with("../../evil.txt"), "'../../evil.txt' (absolute path or '..' component)"),
        ("abs.zip", _zip_with("/tmp/evil.txt"), "'/tmp/evil.txt' (absolute path"),
        ("link.tar.gz", _tar_with_symlink("../../../etc"), "'mydata/link' (link to '../../../etc' outside"),
        ("abslink.tar.gz", _tar_with_symlink("/etc/passwd"), "'mydata/link' (link to '/etc/passwd' outside"),
    ],
)
def test_unsafe_archives_are_rejected(server: Server, tmp_path: Path, name: str, data: bytes, why: str) -> None:
    server.files[name] = data
    write_task(tmp_path / "tasks", {"download": [{"url": server.url(name), "sha256": sha(data)}], "root": "mydata"})
    with pytest.raises(DownloadError, match=re.escape(f"unsafe archive member {why}")):
        fetch_task(tmp_path)
    home = tmp_path / "data" / "sources" / "mydata"
    assert not (home / "extracted").exists() and not list(home.glob(".extracting-*"))
    assert not list(tmp_path.rglob("evil.txt"))


def test_non_archive_needs_extract_false(server: Server, tmp_path: Path) -> None:
    server.files["list.txt"] = b"a.wav\n"
    write_task(tmp_path / "tasks", {"download": [{"url": server.url("list.txt")}]})
    with pytest.raises(DownloadError, match=r"not a zip or tar archive; .*set extract: false"):
        fetch_task(tmp_path)


def test_split_archive_is_joined_and_plain_files_copied(server: Server, dataset_dir: Path, tmp_path: Path) -> None:
    data = archive_bytes(dataset_dir, "zip")
    third = len(data) // 3
    parts = [data[:third], data[third : 2 * third], data[2 * third :]]
    download = []
    for i, part in enumerate(parts, 1):
        server.files[f"mydata.zip.00{i}"] = part
        download.append({"url": server.url(f"mydata.zip.00{i}"), "sha256": sha(part)})
    server.files["notes"] = b"split lists live here\n"
    download.append({"url": server.url("notes"), "filename": "notes.txt", "extract": False})
    write_task(tmp_path / "tasks", {"download": download, "join": "mydata.zip", "root": "mydata"})
    root = fetch_task(tmp_path)
    home = tmp_path / "data" / "sources" / "mydata"
    assert (home / "downloads" / "mydata.zip").read_bytes() == data
    assert (home / "extracted" / "notes.txt").read_text() == "split lists live here\n"
    assert len(read_prepared(tmp_path / "data" / "mydata").metadata) == 20 and root.name == "mydata"
    assert len(server.log) == 4


def test_tasks_sharing_a_source_share_the_download(server: Server, dataset_dir: Path, tmp_path: Path) -> None:
    server.files["mydata.zip"] = data = archive_bytes(dataset_dir, "zip")
    source = {"id": "shared", "download": [{"url": server.url("mydata.zip"), "sha256": sha(data)}], "root": "mydata"}
    write_task(tmp_path / "tasks", source, name="first")
    write_task(tmp_path / "tasks", source, name="second")
    assert fetch_task(tmp_path, "first") == fetch_task(tmp_path, "second")
    assert len(server.log) == 1 and (tmp_path / "data" / "sources" / "shared" / "extracted").is_dir()
    assert (tmp_path / "data" / "first" / "dataset.json").is_file()
    assert (tmp_path / "data" / "second" / "dataset.json").is_file()


def test_wrong_root_names_what_was_extracted(server: Server, dataset_dir: Path, tmp_path: Path) -> None:
    server.files["mydata.zip"] = data = archive_bytes(dataset_dir, "zip")
    entry = {"url": server.url("mydata.zip"), "sha256": sha(data)}
    write_task(tmp_path / "tasks", {"download": [entry], "root": "MyData-master"})
    with pytest.raises(DownloadError, match=r"root: 'MyData-master' is not in .*\(top level: \['mydata'\]\)"):
        fetch_task(tmp_path)


def test_manual_only_and_sourceless_specs(tmp_path: Path) -> None:
    manual = "Request access at https://example.org/form,\n  then download corpus.zip and unzip it."
    write_task(tmp_path / "tasks", {"homepage": "https://example.org", "manual": manual}, name="manual")
    with pytest.raises(DatasetNotReadyError) as err:
        fetch_task(tmp_path, "manual")
    msg = str(err.value)
    assert "\n" not in msg and "Request access at https://example.org/form, then download corpus.zip" in msg
    assert msg.endswith("then run: evalbench data prepare manual --source DIR")

    write_task(tmp_path / "tasks", {}, name="nosource")
    with pytest.raises(EvalbenchError, match=r"nosource.yaml: dataset.source: no download list and no manual"):
        fetch_task(tmp_path, "nosource")
    assert not (tmp_path / "data").exists()


def test_embedded_dataset_has_nothing_to_download(tmp_path: Path) -> None:
    from tests.data.helpers import TASKS

    with pytest.raises(EvalbenchError, match=r"'synth_pitch': the dataset is embedded .*nothing to download"):
        download_task(load_task("synth_pitch", TASKS), tmp_path / "data")


def test_complete_part_is_verified_not_refetched(server: Server, dataset_dir: Path, tmp_path: Path) -> None:
    """Killed between the last byte and the rename: with a known size no request is made; without, a 416 restarts."""
    server.files["mydata.zip"] = data = archive_bytes(dataset_dir, "zip")
    downloads = tmp_path / "data" / "sources" / "mydata" / "downloads"
    downloads.mkdir(parents=True)
    entry = {"url": server.url("mydata.zip"), "sha256": sha(data), "size": len(data)}
    write_task(tmp_path / "tasks", {"download": [entry], "root": "mydata"})
    (downloads / "mydata.zip.part").write_bytes(data)
    fetch_task(tmp_path)
    assert server.log == [] and (downloads / "mydata.zip").read_bytes() == data

    del entry["size"]
    write_task(tmp_path / "tasks", {"download": [entry], "root": "mydata"}, name="nosize")
    (downloads.parent.parent / "nosize" / "downloads").mkdir(parents=True)
    (downloads.parent.parent / "nosize" / "downloads" / "mydata.zip.part").write_bytes(data)
    fetch_task(tmp_path, "nosize")
    assert [(r, n) for _, r, n in server.log] == [(f"bytes={len(data)}-", 0), (None, len(data))]


# -- a full disk ------------------------------------------------------------------------------------------------------


class _NoRoom:
    """A file whose writes fail with ENOSPC after ``room`` bytes (the rest of the file object is the real one)."""

    def __init__(self, fh, room: int) -> None:
        self._fh, self._room = fh, room

    def write(self, data) -> int:
        if len(data) > self._room:  # what fits is written, then the disk is full
            self._fh.write(data[: self._room])
            self._fh.flush()
            self._room = 0
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        self._room -= len(data)
        return self._fh.write(data)

    def __getattr__(self, name: str):
        return getattr(self._fh, name)

    def __enter__(self):
        return self

    def __exit__(self, *exc: object) -> None:
        self._fh.close()


def test_a_full_disk_while_downloading_keeps_the_part_and_is_not_retried(
    server: Server, dataset_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = serve_archive(server, dataset_dir, tmp_path)
    real = open

    def tight(file, mode="r", *args, **kwargs):
        fh = real(file, mode, *args, **kwargs)
        return _NoRoom(fh, 4096) if str(file).endswith(".part") and "b" in mode and "r" not in mode else fh

    monkeypatch.setattr("builtins.open", tight)
    with pytest.raises(DiskFullError) as err:
        fetch_task(tmp_path)
    part = tmp_path / "data" / "sources" / "mydata" / "downloads" / "mydata.zip.part"
    message = str(err.value)
    assert message.startswith(f"cannot write {part}: ") and "(ENOSPC)" in message and "--data-root" in message
    assert len(server.log) == 1  # one request: a full disk is not a network hiccup worth retrying
    kept = part.stat().st_size
    assert kept == 4096  # what arrived is kept for the resume
    monkeypatch.undo()
    no_waits_no_proxies(monkeypatch)
    fetch_task(tmp_path)  # room again: resumes from the part and completes
    assert server.log[-1][1] == f"bytes={kept}-"
    assert (tmp_path / "data" / "sources" / "mydata" / "downloads" / "mydata.zip").read_bytes() == data


def test_a_full_disk_while_extracting_leaves_no_half_extracted_folder(
    server: Server, dataset_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    serve_archive(server, dataset_dir, tmp_path)
    real = dl.extract_archive

    def fills_up(archive: Path, dest: Path) -> None:
        real(archive, dest)  # the members are written, then the disk is full
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(dest / "mydata" / "audio"))

    monkeypatch.setattr(dl, "extract_archive", fills_up)
    home = tmp_path / "data" / "sources" / "mydata"
    with pytest.raises(DiskFullError, match=rf"^cannot write {re.escape(str(home / 'extracted'))}: .*ENOSPC"):
        fetch_task(tmp_path)
    assert sorted(p.name for p in home.iterdir()) == ["downloads"]  # no extracted folder, no temporary one
    monkeypatch.setattr(dl, "extract_archive", real)
    assert fetch_task(tmp_path) == home / "extracted" / "mydata"
    assert len(server.log) == 1  # the verified download was reused
