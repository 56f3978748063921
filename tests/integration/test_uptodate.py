"""The up-to-date memo: a rerun with nothing to do imports neither torch nor scikit-learn, and never lies.

Reruns run in a subprocess so that what they import can be seen (``sys.modules`` at exit).  Every change the
full check would act on — a spec edit, an audio file touched or rewritten, a record changed or removed, evalbench's
own code — sends the rerun through the full check (torch imported), which then decides as it always did.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from evalbench.cli import main
from evalbench.results import uptodate
from tests.conftest import REPO, Env

SCRIPT = """
import json, sys
from evalbench.cli import main
rc = main(sys.argv[1:])
heavy = sorted(m for m in ("torch", "sklearn", "numpy", "pandas") if m in sys.modules)
print(json.dumps({"rc": rc, "heavy": heavy}))
"""
ARGS = ("run", "--encoder", "logmel", "--tasks", "synth_pitch,synth_detect", "--seeds", "1")


@pytest.fixture
def own(env: Env, tmp_path: Path) -> Env:
    """The shared tiny specs and data copied for this test, which edits them."""
    shutil.copytree(env.tasks, tmp_path / "tasks")
    shutil.copytree(env.data, tmp_path / "data")
    return Env(tmp_path / "tasks", env.encoders, tmp_path / "data", env.cache, env.results)


def rerun(env: Env, *extra: str) -> tuple[dict, str]:
    """`evalbench run` in a fresh interpreter: its final JSON line (exit code, heavy modules) and its output."""
    proc = subprocess.run(
        [sys.executable, "-c", SCRIPT, *env.cli(*ARGS, *extra)],
        capture_output=True,
        text=True,
        cwd=REPO,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    *lines, last = proc.stdout.strip().splitlines()
    return json.loads(last), "\n".join(lines)


def test_up_to_date_rerun_imports_no_torch_and_every_change_goes_through_the_full_check(own: Env) -> None:
    assert main(own.cli(*ARGS)) == 0
    assert len(list((own.cache / uptodate.MEMO_DIR).glob("*.json"))) == 1

    status, out = rerun(own)
    assert status == {"rc": 0, "heavy": []}
    assert "0 record(s) written, 2 up to date" in out and "logmel × synth_detect: up to date" in out

    # An audio file rewritten with the same bytes: its time stamp moved, so the full check runs (and finds the
    # content, hence the records, unchanged); it writes a fresh memo and the next rerun is fast again.
    wav = next((own.data / "synth_pitch").rglob("*.wav"))
    wav.write_bytes(wav.read_bytes())
    status, out = rerun(own)
    assert "torch" in status["heavy"] and "0 record(s) written, 2 up to date" in out
    assert rerun(own)[0]["heavy"] == []

    # A record removed: the full check recomputes it.
    (own.results / "logmel" / "synth_detect.linear.json").unlink()
    status, out = rerun(own)
    assert "torch" in status["heavy"] and "1 record(s) written, 1 up to date" in out

    # A spec edit that changes the task (its version): the full check finds the record stale.
    spec = own.tasks / "synth_pitch.yaml"
    spec.write_text(spec.read_text().replace("version: 1", "version: 2"))
    status, out = rerun(own)
    assert "torch" in status["heavy"] and "1 record(s) written, 1 up to date" in out

    # Another request (other seeds) has no memo; --overwrite never answers from one.
    assert "torch" in rerun(own, "--seeds", "2")[0]["heavy"]
    status, out = rerun(own, "--overwrite")
    assert "torch" in status["heavy"] and "2 record(s) written, 0 up to date" in out


def test_check_refuses_any_changed_observation(tmp_path: Path) -> None:
    specs, data, audio = tmp_path / "specs", tmp_path / "ds", tmp_path / "ds" / "audio"
    audio.mkdir(parents=True)
    specs.mkdir()
    (specs / "a.yaml").write_text("name: a\n")
    (audio / "x.wav").write_bytes(b"RIFF0000")
    (data / "dataset.json").write_text(json.dumps({"audio_root": "audio"}))
    (data / "metadata.csv").write_text("file_name\nx.wav\n")
    st = os.stat(audio / "x.wav")
    (data / "content.tsv").write_text(f"file_name\tsize\tmtime_ns\tsha256\nx.wav\t{st.st_size}\t{st.st_mtime_ns}\tab\n")
    checkpoint, record = tmp_path / "w.pt", tmp_path / "r.json"
    checkpoint.write_bytes(b"weights")
    record.write_text("{}")
    inputs = uptodate.Inputs(trees=[str(specs)], files=[str(checkpoint)])
    inputs.add_dataset(data)
    memo = uptodate.memo_path(tmp_path / "cache", "k")

    def written() -> bool:
        return uptodate.write(memo, inputs.observe(), inputs, [("enc", "task", str(record))])

    assert written() and uptodate.check(memo) == [["enc", "task", str(record)]]
    changes = [
        lambda: (specs / "b.yaml").write_text("name: b\n"),  # a new spec: name resolution may change
        lambda: checkpoint.write_bytes(b"weights, other"),  # a checkpoint replaced at the same path
        lambda: record.write_text('{"x": 1}'),  # a record edited
        lambda: (data / "metadata.csv").write_text("file_name\nx.wav\ny.wav\n"),
        lambda: os.utime(audio / "x.wav", ns=(1, 1)),  # an audio file whose index row no longer matches
    ]
    for change in changes:
        assert written()
        change()
        assert uptodate.check(memo) is None

    # An input that changes between the preflight's observation and the end of the run: no memo is written.
    before = inputs.observe()
    checkpoint.write_bytes(b"weights edited during the run")
    assert not uptodate.write(memo, before, inputs, [("enc", "task", str(record))])


def test_bench_rerun_part_reports_the_ratio_and_that_reruns_import_nothing_heavy(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    args = ["bench", "rerun", "--quick", "--json", str(out), "--device", "cpu"]
    assert main([*args, "--data-root", str(tmp_path / "d"), "--cache-dir", str(tmp_path / "c")]) == 0
    figures = {f["figure"]: f for f in json.loads(out.read_text())["figures"]}
    ratio = figures["rerun synth_pitch: cold ÷ up-to-date rerun"]
    assert ratio["ratio"] > 1 and ratio["target"] == "ratio ≥ 20" and isinstance(ratio["met"], bool)
    assert "heavy modules the reruns imported: none" in ratio["note"]  # not a speed assertion: what was imported
