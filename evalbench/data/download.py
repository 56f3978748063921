"""Fetch, check and unpack a dataset's public distribution, then prepare it.

``evalbench data download TASK`` reads the task's ``dataset.source`` and lays
the distribution out under the data root::

    <data_root>/sources/<source id>/downloads/<file>     fetched files (and <file>.part while in flight)
    <data_root>/sources/<source id>/downloads/verified.json   hashes of the files already checked
    <data_root>/sources/<source id>/extracted/           the unpacked distribution
    <data_root>/sources/<source id>/extracted.json       what ``extracted/`` was unpacked from

The source id defaults to the dataset name; tasks that read one distribution
(ESC-10 and ESC-50) name the same id and share downloads and extraction.

Every step survives an interrupt and is a no-op when already done:

- A transfer streams into ``<file>.part`` and resumes it with an HTTP
  ``Range: bytes=N-`` request; a server that answers ``200`` instead of ``206``
  ignored the range, so the part is restarted from zero.  Connection errors,
  time-outs and 5xx answers are retried a bounded number of times with
  exponential backoff, each retry resuming where the last one stopped.
- A complete file is checked against the spec's ``size`` and ``sha256`` before
  it is renamed into place.  A mismatch deletes it and fails (a wrong hash is
  never "fixed" by retrying); an unpinned hash is printed as a warning so it can
  be pinned in the spec.
- Extraction goes into a temporary folder beside ``extracted/`` that is renamed
  into place only when complete, and ``extracted.json`` (the names and hashes
  of the inputs) is written after it.  A rerun whose inputs match is a no-op;
  leftovers of an interrupted extraction are deleted and the extraction redone.
- Archive members that would land outside the extraction folder (absolute
  paths, ``..`` components, links pointing outside) abort the extraction.
"""

from __future__ import annotations

import errno
import http.client
import json
import os
import posixpath
import re
import shutil
import stat
import sys
import tarfile
import tempfile
import time
import urllib.error
import urllib.request
import zipfile
from pathlib import Path, PurePosixPath
from typing import Any

from evalbench import __version__
from evalbench.data.prepare import builder_for, prepare
from evalbench.errors import DatasetNotReadyError, DiskFullError, DownloadError, EvalbenchError
from evalbench.specs.task import DownloadFile, SourceSpec, TaskSpec
from evalbench.utils.console import progress
from evalbench.utils.hashing import sha256_file
from evalbench.utils.io import DATA_ADVICE, atomic_write_json, disk_full_error, is_disk_full

RETRIES = 3  # retries after the first attempt, each resuming the partial file
BACKOFF_SECONDS = 2.0  # wait before retry k is BACKOFF_SECONDS * 2**(k-1)
TIMEOUT_SECONDS = 60.0  # per connect and per read
CHUNK = 1 << 20
VERIFIED = "verified.json"
MARKER = "extracted.json"
_TEMP_PREFIXES = (".extracting-", ".replaced-")


class _Retry(Exception):
    """A transient transfer failure: the next attempt resumes the partial file."""


def source_id(task: TaskSpec) -> str:
    """The folder under ``<data_root>/sources/`` that the task's distribution lives in."""
    return task.dataset.source.id or task.dataset_name


def source_dir(task: TaskSpec, data_root: Path) -> Path:
    """``<data_root>/sources/<source id>``."""
    return Path(data_root) / "sources" / source_id(task)


def _one_line(text: str) -> str:
    return " ".join(text.split())


def check_downloadable(task: TaskSpec) -> None:
    """Raise unless the task's spec lists files to download.

    Raises:
        DatasetNotReadyError: The dataset must be fetched by hand; the message is
            the spec's ``manual`` text and the ``prepare`` command to run after.
        EvalbenchError: The dataset is embedded, or the spec names no source.
    """
    source = task.dataset.source
    if source.download:
        return
    if source.manual:
        raise DatasetNotReadyError(
            f"task '{task.name}': dataset '{task.dataset_name}' cannot be downloaded automatically; "
            f"fetch it by hand: {_one_line(source.manual)}; then run: evalbench data prepare {task.name} --source DIR"
        )
    builder = builder_for(task)
    if builder.embedded:
        raise EvalbenchError(
            f"task '{task.name}': the dataset is embedded (generated on first use); nothing to download"
        )
    raise EvalbenchError(
        f"{task.source_path or task.name}: dataset.source: no download list and no manual instructions; "
        f"prepare a local copy with: {builder.instructions(task)}"
    )


def download_task(task: TaskSpec, data_root: Path, force: bool = False) -> Path:
    """Download, verify and extract a task's distribution, then prepare the dataset.

    Args:
        task: Task spec whose ``dataset.source.download`` lists the files.
        data_root: Data root; see the module docstring for the layout.
        force: Fetch every file again, re-extract and rebuild the prepared dataset.

    Returns:
        ``extracted/<source.root>``: the folder holding the official layout, which
        was passed to :func:`evalbench.data.prepare.prepare` as ``source``.

    Raises:
        DatasetNotReadyError: Manual-only dataset (see :func:`check_downloadable`).
        DownloadError: Unreachable URL, checksum mismatch, unsafe archive, or a
            missing ``source.root`` folder after extraction.
    """
    check_downloadable(task)
    source = task.dataset.source
    home = source_dir(task, data_root)
    downloads = home / "downloads"
    downloads.mkdir(parents=True, exist_ok=True)
    hashes = {f.name: fetch(f, downloads, force=force) for f in source.download}
    extracted = unpack(source, downloads, home, hashes, force=force)
    root = extracted / source.root if source.root else extracted
    if not root.is_dir():
        found = sorted(p.name for p in extracted.iterdir())[:10]
        raise DownloadError(
            f"{task.source_path or task.name}: dataset.source.root: '{source.root}' is not in the extracted "
            f"distribution {extracted} (top level: {found}); fix root in the spec"
        )
    prepare(task, data_root, source=root, force=force)
    return root


# -- fetching ------------------------------------------------------------------------------------------------------


def _records(downloads: Path) -> dict[str, Any]:
    try:
        return json.loads((downloads / VERIFIED).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def _remember(downloads: Path, name: str, url: str, digest: str) -> None:
    stat_ = (downloads / name).stat()
    records = _records(downloads)
    records[name] = {"url": url, "sha256": digest, "size": stat_.st_size, "mtime_ns": stat_.st_mtime_ns}
    atomic_write_json(downloads / VERIFIED, records)


def _known_digest(path: Path, record: dict[str, Any] | None) -> str:
    """The file's SHA-256: from its record if size and mtime are unchanged, else computed."""
    st = path.stat()
    if record and record.get("size") == st.st_size and record.get("mtime_ns") == st.st_mtime_ns:
        return str(record["sha256"])
    return sha256_file(path)


def _warn_unpinned(spec: DownloadFile, digest: str) -> None:
    print(
        f"evalbench: warning: {spec.url}: sha256 not pinned in the spec; computed {digest} "
        "(add it as sha256 to dataset.source.download to pin it)",
        file=sys.stderr,
    )


def fetch(spec: DownloadFile, downloads: Path, force: bool = False) -> str:
    """Make ``downloads/<name>`` a complete, verified copy of ``spec.url``.

    A file already in place is kept when it matches the spec (its hash is taken
    from ``verified.json`` when size and mtime are unchanged, so a rerun
    reads nothing); one that does not match is fetched again.

    Args:
        spec: The file to fetch.
        downloads: Download folder.
        force: Delete any existing copy (complete or partial) first.

    Returns:
        The file's SHA-256.

    Raises:
        DownloadError: The transfer failed after all retries, or the file's size
            or pinned SHA-256 is wrong (the bad file is deleted).
    """
    final, part = downloads / spec.name, downloads / f"{spec.name}.part"
    if force:
        final.unlink(missing_ok=True)
        part.unlink(missing_ok=True)
    if final.is_file():
        record = _records(downloads).get(spec.name)
        digest = _known_digest(final, record)
        size_ok = spec.size is None or final.stat().st_size == spec.size
        if size_ok and spec.sha256 in (None, digest):
            if record is None or record.get("sha256") != digest:
                if spec.sha256 is None:
                    _warn_unpinned(spec, digest)
                _remember(downloads, spec.name, spec.url, digest)
            return digest
        final.unlink()  # stale copy (the spec's pin changed): fetch it again
    transfer(spec, part)
    digest = sha256_file(part)
    actual_size = part.stat().st_size
    if spec.size is not None and actual_size != spec.size:
        part.unlink()
        raise DownloadError(
            f"{spec.url}: size mismatch: expected {spec.size} bytes, got {actual_size}; the bad file was deleted"
        )
    if spec.sha256 is not None and digest != spec.sha256:
        part.unlink()
        raise DownloadError(
            f"{spec.url}: sha256 mismatch: expected {spec.sha256}, got {digest}; the bad file was deleted "
            "(the server may serve a different version: check the dataset homepage before re-pinning)"
        )
    if spec.sha256 is None:
        _warn_unpinned(spec, digest)
    os.replace(part, final)
    _remember(downloads, spec.name, spec.url, digest)
    return digest


def transfer(spec: DownloadFile, part: Path) -> None:
    """Stream ``spec.url`` into ``part``, resuming and retrying on transient failures.

    Raises:
        DownloadError: A client error (4xx), or still failing after
            :data:`RETRIES` retries; the partial file is kept for the next run.
    """
    for attempt in range(RETRIES + 1):
        try:
            _stream(spec, part)
            return
        except _Retry as exc:
            reason = str(exc)
        except urllib.error.HTTPError as exc:  # before URLError/OSError: it subclasses both
            if exc.code != 429 and exc.code < 500:
                raise DownloadError(
                    f"{spec.url}: HTTP {exc.code} {exc.reason}; the file may have moved: check "
                    "dataset.source.download in the task spec against the dataset homepage"
                ) from None
            reason = f"HTTP {exc.code} {exc.reason}"
        except (urllib.error.URLError, OSError, http.client.HTTPException) as exc:
            if is_disk_full(exc):  # retrying cannot help; what arrived stays in the partial file
                raise DiskFullError(
                    f"cannot write {part}: {exc.strerror} ({errno.errorcode.get(exc.errno, exc.errno)}); the bytes "
                    f"received so far are kept and the next run resumes from them; {DATA_ADVICE}, then run again",
                    str(part),
                ) from None
            reason = str(getattr(exc, "reason", None) or exc) or type(exc).__name__
        if attempt < RETRIES:
            time.sleep(BACKOFF_SECONDS * 2**attempt)
    raise DownloadError(
        f"{spec.url}: download failed after {RETRIES + 1} attempts ({reason}); "
        f"rerun the command to resume from {part.name}"
    )


def _stream(spec: DownloadFile, part: Path) -> None:
    """One HTTP request: append to ``part`` (206) or rewrite it from zero (200)."""
    offset = part.stat().st_size if part.is_file() else 0
    if spec.size is not None and offset > spec.size:
        part.unlink()
        offset = 0
    if spec.size is not None and 0 < offset == spec.size:
        return  # complete already (interrupted before the rename); verified next
    headers = {"User-Agent": f"evalbench/{__version__}"}
    if offset:
        headers["Range"] = f"bytes={offset}-"
    request = urllib.request.Request(spec.url, headers=headers)
    try:
        response = urllib.request.urlopen(request, timeout=TIMEOUT_SECONDS)
    except urllib.error.HTTPError as exc:
        if exc.code == 416 and offset:  # range not satisfiable: the part is unusable
            part.unlink()
            raise _Retry("server refused to resume (HTTP 416); restarting from zero") from None
        raise
    with response:
        mode = "wb"
        if offset and response.status == 206:
            match = re.match(r"bytes (\d+)-", response.headers.get("Content-Range", ""))
            if not match or int(match.group(1)) != offset:
                part.unlink()
                raise _Retry("server resumed at the wrong offset; restarting from zero")
            mode = "ab"
        else:
            offset = 0  # a 200 answer is the whole file: the server ignored the range
        length = response.headers.get("Content-Length")
        expected = int(length) if length and length.isdigit() else None
        total = offset + expected if expected is not None else spec.size
        received = 0
        with (
            open(part, mode) as fh,
            progress(
                total=total,
                initial=offset,
                unit="B",
                unit_scale=True,
                unit_divisor=1024,
                desc=spec.name,
                leave=False,
            ) as bar,
        ):
            while chunk := response.read(CHUNK):
                fh.write(chunk)
                received += len(chunk)
                bar.update(len(chunk))
            fh.flush()
            os.fsync(fh.fileno())
    if expected is not None and received < expected:
        raise _Retry(f"connection closed after {offset + received} of {total} bytes")


# -- unpacking -----------------------------------------------------------------------------------------------------


def unpack(source: SourceSpec, downloads: Path, home: Path, hashes: dict[str, str], force: bool = False) -> Path:
    """Extract (or copy) the downloaded files into ``home/extracted`` unless already done.

    Files with ``extract: true`` are unpacked in spec order; with ``source.join``
    they are first concatenated, in order, into ``downloads/<join>``, which is
    unpacked instead.  Files with ``extract: false`` are copied under their name.

    Args:
        source: The spec's source section.
        downloads: Folder holding the verified downloads.
        home: ``<data_root>/sources/<id>``.
        hashes: SHA-256 of each downloaded file, by name.
        force: Extract again even if the marker matches.

    Returns:
        ``home/extracted``.

    Raises:
        DownloadError: A file is not an archive, or an archive member is unsafe.
    """
    extracted, marker = home / "extracted", home / MARKER
    for leftover in home.iterdir():
        if leftover.name.startswith(_TEMP_PREFIXES):
            shutil.rmtree(leftover, ignore_errors=True)
    want = {
        "join": source.join,
        "files": [{"name": f.name, "sha256": hashes[f.name], "extract": f.extract} for f in source.download],
    }
    if not force and extracted.is_dir() and _read_json(marker) == want:
        return extracted
    marker.unlink(missing_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=_TEMP_PREFIXES[0], dir=home))
    try:
        archives = [downloads / f.name for f in source.download if f.extract]
        if source.join and archives:
            archives = [_join(archives, downloads / source.join)]
        for archive in archives:
            extract_archive(archive, tmp)
        for f in source.download:
            if not f.extract:
                shutil.copy2(downloads / f.name, tmp / f.name)
        old = home / f"{_TEMP_PREFIXES[1]}{os.getpid()}"
        if extracted.exists():
            os.replace(extracted, old)
        os.replace(tmp, extracted)
    except BaseException as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        if is_disk_full(exc):  # nothing half-extracted is left: the temporary folder is gone
            raise disk_full_error(extracted, exc, DATA_ADVICE) from None  # type: ignore[arg-type]
        raise
    shutil.rmtree(old, ignore_errors=True)
    atomic_write_json(marker, want)
    return extracted


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def _join(parts: list[Path], dest: Path) -> Path:
    """Concatenate ``parts`` in order into ``dest`` atomically."""
    fd, tmp = tempfile.mkstemp(prefix=f".tmp-{dest.name}-", dir=dest.parent)
    try:
        with os.fdopen(fd, "wb") as out:
            for part in parts:
                with open(part, "rb") as fh:
                    shutil.copyfileobj(fh, out, CHUNK)
        os.replace(tmp, dest)
    except BaseException as exc:
        Path(tmp).unlink(missing_ok=True)
        if is_disk_full(exc):
            raise disk_full_error(dest, exc, DATA_ADVICE) from None  # type: ignore[arg-type]
        raise
    return dest


def _escapes(path: str) -> bool:
    """True if a relative member path or link target leaves the extraction folder."""
    if PurePosixPath(path).is_absolute() or re.match(r"^[A-Za-z]:", path):
        return True
    norm = posixpath.normpath(path)
    return norm == ".." or norm.startswith("../")


def _check_member(archive: Path, name: str, link: str | None = None, hard: bool = False) -> None:
    """Reject a member whose path, or link target, would land outside the extraction folder."""
    why = ""
    if _escapes(name) or ".." in PurePosixPath(name).parts:
        why = "absolute path or '..' component"
    elif link is not None:
        base = "" if hard else posixpath.dirname(name)
        if PurePosixPath(link).is_absolute() or _escapes(posixpath.join(base, link)):
            why = f"link to '{link}' outside the archive"
    if why:
        raise DownloadError(
            f"{archive}: unsafe archive member '{name}' ({why}); refusing to extract: "
            "check the URL and sha256 in the task spec"
        )


def extract_archive(archive: Path, dest: Path) -> None:
    """Unpack a zip or tar (plain, gz, bz2, xz) archive into ``dest``, member by member.

    Raises:
        DownloadError: Not an archive (set ``extract: false`` for plain files), a
            corrupt archive, or an unsafe member.
    """
    try:
        if zipfile.is_zipfile(archive):
            with zipfile.ZipFile(archive) as zf:
                members = zf.infolist()
                for info in members:
                    is_link = stat.S_ISLNK(info.external_attr >> 16)
                    _check_member(archive, info.filename, zf.read(info).decode("utf-8", "replace") if is_link else None)
                for info in progress(members, desc=f"extract {archive.name}", unit="file", leave=False):
                    zf.extract(info, dest)
        elif tarfile.is_tarfile(archive):
            with tarfile.open(archive, "r:*") as tf:
                for member in progress(tf, desc=f"extract {archive.name}", unit="file", leave=False):
                    if member.isdev() or member.isfifo():
                        raise DownloadError(f"{archive}: unsafe archive member '{member.name}' (device or fifo)")
                    link = member.linkname if (member.issym() or member.islnk()) else None
                    _check_member(archive, member.name, link, hard=member.islnk())
                    tf.extract(member, dest, filter="data")
        else:
            raise DownloadError(
                f"{archive}: not a zip or tar archive; if the file is meant to be used as is, "
                "set extract: false for it in dataset.source.download"
            )
    except (zipfile.BadZipFile, tarfile.TarError, EOFError, OSError) as exc:
        raise DownloadError(
            f"{archive}: cannot extract ({exc}); if the archive is corrupt, download it again with --force"
        ) from None


__all__ = [
    "DownloadError",
    "check_downloadable",
    "download_task",
    "extract_archive",
    "fetch",
    "source_dir",
    "source_id",
    "transfer",
    "unpack",
]
