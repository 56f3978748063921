"""`evalbench data download|prepare|verify` and the hints `run` gives for datasets not yet on disk."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from evalbench.cli import main
from tests.data.helpers import ENCODERS
from tests.data.loopback import Server, loopback_server, no_waits_no_proxies
from tests.data.test_download import archive_bytes, make_dataset, sha, write_task


@pytest.fixture
def http(monkeypatch: pytest.MonkeyPatch) -> Iterator[Server]:
    no_waits_no_proxies(monkeypatch)
    with loopback_server() as state:
        yield state


def data_cli(tmp_path: Path, *args: str) -> int:
    return main(["data", *args, "--tasks-dir", str(tmp_path / "tasks"), "--data-root", str(tmp_path / "data")])


def test_download_then_verify_names_a_corrupted_file(http: Server, tmp_path: Path, capsys: pytest.CaptureFixture):
    data = archive_bytes(make_dataset(tmp_path / "src" / "mydata"), "tar.gz")
    http.files["mydata.tar.gz"] = data
    entry = {"url": http.url("mydata.tar.gz"), "sha256": sha(data)}
    write_task(tmp_path / "tasks", {"download": [entry], "root": "mydata"})
    assert data_cli(tmp_path, "download", "mydata") == 0
    root = tmp_path / "data" / "sources" / "mydata" / "extracted" / "mydata"
    out = capsys.readouterr().out
    assert f"mydata: official layout in {root}" in out and "prepared: 20 clips" in out

    assert data_cli(tmp_path, "verify", "mydata") == 0
    out = capsys.readouterr().out
    table = {line.split()[0]: line.split()[1:] for line in out.splitlines() if line.startswith(("low", "high"))}
    assert table == {"low": ["2", "6", "2", "10"], "high": ["2", "6", "2", "10"]}  # test, train, valid, total
    assert "all 20 files decode cleanly" in out

    bad = root / "audio" / "high_valid_1.wav"
    bad.write_bytes(bad.read_bytes()[:3000])
    assert data_cli(tmp_path, "verify", "mydata") == 2
    captured = capsys.readouterr()
    assert f"truncated {bad}: data chunk declares" in captured.out
    # stderr: the change is noticed (the file's prepared checksum no longer matches), then the error
    err = captured.err.strip().splitlines()
    assert err[-1] == "evalbench: error: 1 problem file(s) in mydata; see above"
    assert len(err) == 2 and "1 audio file(s) changed since they were prepared" in err[0] and str(bad) in err[0]

    assert data_cli(tmp_path, "download", "mydata") == 0 and len(http.log) == 1  # already there: no request


def test_prepare_and_verify_print_the_exclusions(tmp_path: Path, capsys: pytest.CaptureFixture):
    source = make_dataset(tmp_path / "mydata")
    write_task(tmp_path / "tasks", {})
    spec = tmp_path / "tasks" / "mydata.yaml"
    spec.write_text(
        spec.read_text().replace(
            "  source: {}\n",
            "  source: {}\n  exclude:\n  - {file: audio/low_train_0.wav, reason: clipped at 0 dBFS}\n"
            "  - {file: gone.wav, reason: absent from this copy}\n",
        )
    )
    assert data_cli(tmp_path, "prepare", "mydata", "--source", str(source)) == 0
    out = capsys.readouterr().out
    assert "prepared: 19 clips" in out
    assert "  audio/low_train_0.wav: clipped at 0 dBFS (1 row(s) removed)" in out
    assert "  gone.wav: absent from this copy (0 row(s) removed)" in out
    assert data_cli(tmp_path, "verify", "mydata") == 0
    assert "audio/low_train_0.wav: clipped at 0 dBFS (1 row(s) removed)" in capsys.readouterr().out


def _run_error(tmp_path: Path, capsys: pytest.CaptureFixture, task: str) -> str:
    args = ["run", "--encoder", "logmel", "--tasks", task, "--tasks-dir", str(tmp_path / "tasks")]
    args += ["--encoders-dir", str(ENCODERS), "--data-root", str(tmp_path / "data")]
    args += ["--cache-dir", str(tmp_path / "cache"), "--results-dir", str(tmp_path / "results")]
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("evalbench: error: ")
    return err


def test_unprepared_datasets_say_what_to_do(tmp_path: Path, capsys: pytest.CaptureFixture):
    entry = {"url": "http://127.0.0.1:9/mydata.zip"}
    write_task(tmp_path / "tasks", {"download": [entry]}, name="web")
    manual = "Accept the licence at https://example.org and download corpus.zip."
    write_task(tmp_path / "tasks", {"manual": manual}, name="byhand")

    err = _run_error(tmp_path, capsys, "web")
    assert f"dataset 'web' is not prepared under {tmp_path / 'data'}; run: evalbench data download web" in err
    assert "(or, with the dataset already on disk: evalbench data prepare web --source DIR)" in err
    err = _run_error(tmp_path, capsys, "byhand")
    assert f"run: evalbench data prepare byhand --source DIR  after fetching it by hand: {manual}" in err

    assert data_cli(tmp_path, "download", "byhand") == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert f"fetch it by hand: {manual}; then run: evalbench data prepare byhand --source DIR" in err
