"""``run --skip-bad``: bad clips are excluded by name, the record lists them, and nothing else changes.

Without the flag a bad clip stops ``run`` (exit 2, naming it; ``test_bad_audio.py``).  With it,
the clips ``data verify`` reports as unusable are left out of every split.  The scores are then exactly
those of the same task whose metadata never listed them.  The record lists every excluded file and
lives in its own file, never served to a run without the flag.  The leaderboard marks the row.
An exclusion that empties a class in a split is a clear error.
"""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from evalbench.cli import main
from evalbench.results.schema import render_json_schema, schema_errors
from evalbench.results.significance import _compatible
from evalbench.results.store import Predictions
from evalbench.results.tables import write_leaderboard
from tests.data.helpers import ENCODERS, write_audio
from tests.reliability.test_bad_audio import TASK, _write_case
from tests.unit.test_results import record, write

SR = 16000
N = 24
TRAIN, TEST = "audio/clip_05.wav", "audio/clip_21.wav"  # a "high" training clip and a "high" test clip
FOLDS_TASK = TASK.replace("splits: {type: fixed}", "splits: {type: folds, folds: 3}")


def _folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, folds: bool = False) -> dict[str, Path]:
    """Task 'mine': 24 one-second tones, low/high alternating; 16/4/4 train/valid/test, or 3 folds of 8."""
    dirs = {k: tmp_path / k for k in ("source", "tasks", "data", "cache", "results")}
    for var, key in (("DATA", "data"), ("CACHE", "cache"), ("RESULTS", "results"), ("TASKS_DIR", "tasks")):
        monkeypatch.setenv(f"EVALBENCH_{var}", str(dirs[key]))
    rows = []
    for i in range(N):
        name = f"audio/clip_{i:02d}.wav"
        write_audio(dirs["source"] / name, 1.0, SR, freq=(220.0, 1760.0)[i % 2] * (1 + 0.01 * i), seed=i)
        row = {"file_name": name, "label": ("low", "high")[i % 2]}
        if folds:
            row["fold"] = i % 3 + 1
        else:
            row["split"] = "train" if i < 16 else "valid" if i < 20 else "test"
        rows.append(row)
    pd.DataFrame(rows).to_csv(dirs["source"] / "metadata.csv", index=False)
    dirs["tasks"].mkdir()
    (dirs["tasks"] / "mine.yaml").write_text(FOLDS_TASK if folds else TASK)
    return dirs


@pytest.fixture
def folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Path]:
    return _folder(tmp_path, monkeypatch)


def _cli(dirs: dict[str, Path], *args: str) -> int:
    return main([*args, "--tasks-dir", str(dirs["tasks"]), "--data-root", str(dirs["data"])])


def _run(dirs: dict[str, Path], *flags: str) -> int:
    args = ["run", "--encoder", "logmel", "--tasks", "mine", "--seeds", "1", "--encoders-dir", str(ENCODERS)]
    return _cli(dirs, *args, "--cache-dir", str(dirs["cache"]), "--results-dir", str(dirs["results"]), *flags)


def _break(dirs: dict[str, Path], name: str, case: str) -> bytes:
    """Replace source clip ``name`` by the bad file ``case`` (after prepare); return its good bytes."""
    victim = dirs["source"] / name
    good = victim.read_bytes()
    victim.unlink()
    assert _write_case(victim.with_suffix(""), case) == victim
    return good


def _prepare_and_break(dirs: dict[str, Path]) -> dict[str, bytes]:
    assert _cli(dirs, "data", "prepare", "mine", "--source", str(dirs["source"])) == 0
    return {TRAIN: _break(dirs, TRAIN, "corrupt"), TEST: _break(dirs, TEST, "nan")}


def _numbers(rec: dict) -> dict:
    """Everything a record says about the scores (not about its provenance or timings)."""
    return {
        "scores": rec["scores"],
        "runs": [
            {k: r[k] for k in ("seed", "fold", "test", "valid", "chosen", "n", "valid_sha256")} for r in rec["runs"]
        ],
        "classes": rec["task"]["classes"],
        "n_clips": rec["task"]["n_clips"],
    }


def _close(a: object, b: object, path: str = "$") -> list[str]:
    """Where two JSON values differ (numbers by more than 1e-9)."""
    if isinstance(a, dict) and isinstance(b, dict):
        if set(a) != set(b):
            return [f"{path}: keys {sorted(set(a) ^ set(b))}"]
        return [d for k in a for d in _close(a[k], b[k], f"{path}.{k}")]
    if isinstance(a, list) and isinstance(b, list):
        if len(a) != len(b):
            return [f"{path}: lengths {len(a)} != {len(b)}"]
        return [d for i, (x, y) in enumerate(zip(a, b, strict=True)) for d in _close(x, y, f"{path}[{i}]")]
    if isinstance(a, float) or isinstance(b, float):
        ok = isinstance(a, int | float) and isinstance(b, int | float) and abs(a - b) <= 1e-9
        return [] if ok else [f"{path}: {a!r} != {b!r}"]
    return [] if a == b else [f"{path}: {a!r} != {b!r}"]


def test_skip_bad_excludes_exactly_the_bad_clips_and_scores_the_rest(
    folder: dict[str, Path], tmp_path: Path, capsys
) -> None:
    _prepare_and_break(folder)
    capsys.readouterr()
    assert _run(folder) == 2  # without the flag: refused, naming the clip, no record
    err = capsys.readouterr().err
    assert str(folder["source"] / TRAIN) in err or str(folder["source"] / TEST) in err, err
    assert not list(folder["results"].glob("*/*.json"))

    assert _run(folder, "--skip-bad") == 0
    out = capsys.readouterr()
    warning = [line for line in out.err.splitlines() if "excluded as unreadable or damaged" in line]
    assert len(warning) == 1 and "mine: 2 clip(s) excluded" in warning[0] and "test 1, train 1" in warning[0]
    assert str(folder["source"] / TRAIN) in out.err and str(folder["source"] / TEST) in out.err
    assert "2 clip(s) excluded (--skip-bad)" in out.out  # the closing summary table says so too
    assert not (folder["results"] / "logmel" / "mine.linear.json").exists()  # the full task's record: untouched
    path = folder["results"] / "logmel" / "mine.linear.skip-bad.json"
    rec = json.loads(path.read_text())
    excluded = rec["excluded"]
    assert {k: excluded[k] for k in ("option", "count", "by_part")} == {
        "option": "--skip-bad",
        "count": 2,
        "by_part": {"test": 1, "train": 1},
    }
    assert [(f["file"], f["part"], f["kind"]) for f in excluded["files"]] == [
        (TRAIN, "train", "unreadable"),
        (TEST, "test", "nonfinite"),
    ]
    assert "cannot decode audio" in excluded["files"][0]["detail"]
    assert "10 NaN or infinite" in excluded["files"][1]["detail"]
    assert str(folder["source"]) not in path.read_text()  # no path of this machine in the record
    assert rec["schema_version"] == 2 and schema_errors(rec, json.loads(render_json_schema())) == []
    assert rec["task"]["n_clips"] == N - 2
    assert [r["n"] for r in rec["runs"]] == [{"train": 15, "valid": 4, "test": 3}]  # 4 test clips less 1 bad

    # the same task whose metadata never listed the two clips: the same numbers
    ref = {k: tmp_path / f"ref_{k}" for k in ("source", "data", "cache", "results")}
    ref["tasks"] = folder["tasks"]
    shutil.copytree(folder["source"], ref["source"])
    for name in (TRAIN, TEST):
        (ref["source"] / name).unlink()
    meta = pd.read_csv(ref["source"] / "metadata.csv")
    meta[~meta.file_name.isin([TRAIN, TEST])].to_csv(ref["source"] / "metadata.csv", index=False)
    assert _cli(ref, "data", "prepare", "mine", "--source", str(ref["source"])) == 0
    assert _run(ref) == 0
    full = json.loads((ref["results"] / "logmel" / "mine.linear.json").read_text())
    assert "excluded" not in full
    assert _close(_numbers(rec), _numbers(full)) == []
    assert _numbers(rec) == _numbers(full)  # in fact bit-identical: the same clips, crops, fits and draws
    assert rec["scores"]["test"]["accuracy"]["mean"] >= 0.5  # a real score, not a degenerate one

    # the leaderboard marks the row, in Markdown and CSV, with a legend
    assert main(["leaderboard", "--results-dir", str(folder["results"]), "--tasks-dir", str(folder["tasks"])]) == 0
    md = (folder["results"] / "leaderboard.md").read_text()
    row = next(line for line in md.splitlines() if line.startswith("| logmel"))
    assert row.rstrip(" |").endswith("‡"), row
    assert "‡ 2 clips excluded as unreadable or damaged (`--skip-bad`)" in md and "logmel × mine: 2 clips" in md
    with (folder["results"] / "leaderboard.csv").open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert [(r["encoder"], r["excluded"], r["record"]) for r in rows] == [
        ("logmel", "2", "logmel/mine.linear.skip-bad.json")
    ]


def test_a_run_without_the_flag_is_never_served_the_skipped_record(folder: dict[str, Path], capsys) -> None:
    good = _prepare_and_break(folder)
    assert _run(folder, "--skip-bad") == 0
    skipped = folder["results"] / "logmel" / "mine.linear.skip-bad.json"
    first = skipped.read_bytes()
    capsys.readouterr()
    assert _run(folder, "--skip-bad") == 0  # the same exclusions: up to date
    assert "up to date" in capsys.readouterr().out and skipped.read_bytes() == first
    assert _run(folder) == 2  # without the flag: still refused, not answered from the skipped record
    assert "up to date" not in capsys.readouterr().out

    (folder["source"] / TEST).write_bytes(good[TEST])  # one clip repaired: another exclusion set
    assert _run(folder, "--skip-bad") == 0
    again = json.loads(skipped.read_text())
    assert again["excluded"]["count"] == 1 and again["runs"][0]["n"]["test"] == 4

    (folder["source"] / TRAIN).write_bytes(good[TRAIN])  # all repaired: the plain record, beside the skipped one
    capsys.readouterr()
    assert _run(folder) == 0
    plain = folder["results"] / "logmel" / "mine.linear.json"
    rec = json.loads(plain.read_text())
    assert "excluded" not in rec and rec["task"]["n_clips"] == N and rec["runs"][0]["n"]["test"] == 4
    assert "written" in capsys.readouterr().out
    assert _run(folder, "--skip-bad") == 0  # nothing bad left: --skip-bad is a plain run, served the plain record
    assert "up to date" in capsys.readouterr().out and json.loads(plain.read_text()) == rec

    # both records exist: the leaderboard shows the full task's, unmarked
    write_leaderboard(folder["results"], folder["tasks"])
    md = (folder["results"] / "leaderboard.md").read_text()
    assert "‡" not in md
    with (folder["results"] / "leaderboard.csv").open(newline="") as fh:
        assert [r["record"] for r in csv.DictReader(fh)] == ["logmel/mine.linear.json"]


def test_an_exclusion_that_empties_a_class_in_a_split_is_a_clear_error(folder: dict[str, Path], capsys) -> None:
    assert _cli(folder, "data", "prepare", "mine", "--source", str(folder["source"])) == 0
    _break(folder, "audio/clip_21.wav", "corrupt")  # the test split's two "high" clips
    _break(folder, "audio/clip_23.wav", "truncated_wav")
    capsys.readouterr()
    assert _run(folder, "--skip-bad") == 2
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if line.startswith("evalbench: error: ")]
    assert len(errors) == 1 and "Traceback" not in err, err
    assert "excluding 2 bad clip(s) (--skip-bad) leaves class 'high' with no clip in test (it had 2" in errors[0]
    assert "'audio/clip_21.wav', 'audio/clip_23.wav'" in errors[0]
    assert not list(folder["results"].glob("*/*.json"))


def test_k_fold_task_excludes_from_the_fold_and_keeps_silent_clips(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    dirs = _folder(tmp_path, monkeypatch, folds=True)
    assert _cli(dirs, "data", "prepare", "mine", "--source", str(dirs["source"])) == 0
    _break(dirs, "audio/clip_04.wav", "nan")  # fold 2 (4 % 3 + 1)
    _break(dirs, "audio/clip_06.wav", "missing")  # fold 1, vanished after prepare
    silent = dirs["source"] / "audio" / "clip_07.wav"  # valid audio: kept
    sf.write(silent, np.zeros(SR, np.int16), SR, subtype="PCM_16")  # every sample zero
    assert _run(dirs, "--skip-bad") == 0
    rec = json.loads((dirs["results"] / "logmel" / "mine.linear.skip-bad.json").read_text())
    assert [(f["file"], f["part"], f["kind"]) for f in rec["excluded"]["files"]] == [
        ("audio/clip_04.wav", "fold2", "nonfinite"),
        ("audio/clip_06.wav", "fold1", "missing"),
    ]
    assert rec["excluded"]["by_part"] == {"fold1": 1, "fold2": 1} and rec["task"]["n_clips"] == N - 2
    tested = {r["fold"]: r["n"]["test"] for r in rec["runs"]}
    assert tested == {1: 7, 2: 7, 3: 8}  # each fold is tested once, less its bad clip
    assert all(r["n"]["train"] + r["n"]["valid"] + r["n"]["test"] == N - 2 for r in rec["runs"])


# --- leaderboard and significance without a run -------------------------------------------------------------------


def _skipped(rec: dict, count: int) -> dict:
    files = [{"file": f"c{i}.wav", "part": "test", "kind": "unreadable", "detail": "x"} for i in range(count)]
    return {**rec, "excluded": {"option": "--skip-bad", "count": count, "by_part": {"test": count}, "files": files}}


def test_leaderboard_prefers_the_full_record_and_marks_a_skipped_one(tmp_path: Path) -> None:
    results, tasks = tmp_path / "results", tmp_path / "tasks"
    (tasks / "suites").mkdir(parents=True)
    (tasks / "suites" / "s.yaml").write_text("name: s\ndescription: test\ntasks: [t1, t2]\n")
    write(results, record("a", "t1", 0.50, 0.0))
    skip_a = _skipped(record("a", "t1", 0.90, 0.0), 3)  # superseded by a's full record
    (results / "a" / "t1.linear.skip-bad.json").write_text(json.dumps(skip_a))
    (results / "b").mkdir()
    (results / "b" / "t1.linear.skip-bad.json").write_text(json.dumps(_skipped(record("b", "t1", 0.7, 0.0), 1)))
    write(results, record("a", "t2", 0.60, 0.0))
    write(results, record("b", "t2", 0.80, 0.0))
    written = write_leaderboard(results, tasks, plot=True)  # the plots put ‡ over b's bar (mark_excluded)
    assert [p.name for p in written] == ["leaderboard.md", "leaderboard.csv", "leaderboard.png", "leaderboard-s.png"]
    md = (results / "leaderboard.md").read_text()
    cells = {r[0]: r[1:] for r in ([c.strip() for c in line.split("|")[1:-1]] for line in md.splitlines())
             if r and r[0] in ("a", "b")}  # fmt: skip
    assert cells == {"a": ["50.0 ± 0.0", "60.0 ± 0.0", "55.0"], "b": ["70.0 ± 0.0 ‡", "80.0 ± 0.0", "75.0 ‡"]}
    assert "‡ 1 clip excluded as unreadable or damaged (`--skip-bad`)" in md and "(b × t1: 1 clip)" in md
    with (results / "leaderboard.csv").open(newline="") as fh:
        rows = {(r["encoder"], r["task"]): (r["excluded"], r["record"]) for r in csv.DictReader(fh)}
    assert rows[("a", "t1")] == ("0", "a/t1.linear.json") and rows[("b", "t1")] == ("1", "b/t1.linear.skip-bad.json")
    assert len(rows) == 4  # one row per pair: a's skipped t1 record is superseded by its full one


def test_significance_never_pairs_records_with_different_exclusions() -> None:
    base = {**record("a", "t1", 0.5, 0.0), "task": {"dataset_sha256": "d", "spec_sha256": "s", "label_type": "single"}}
    y = np.array([0, 1, 0, 1])
    pred = Predictions([(np.arange(4), np.zeros((4, 2), np.float32))], np.array([0]), np.arange(4), y)
    assert _compatible((base, pred), (base, pred))
    assert not _compatible((base, pred), (_skipped(base, 1), pred))  # same dataset, rows numbering other clips
    assert _compatible((_skipped(base, 1), pred), (_skipped(base, 1), pred))


def test_every_refused_kind_is_excluded_and_silence_is_kept(folder: dict[str, Path]) -> None:
    """The whole bad-audio matrix of ``test_bad_audio.py`` through :func:`find_bad` (no encoding): one checker."""
    from evalbench.data.prepare import open_task_data
    from evalbench.data.skip_bad import find_bad, without
    from evalbench.specs.task import load_task
    from tests.reliability.test_bad_audio import REFUSED

    assert _cli(folder, "data", "prepare", "mine", "--source", str(folder["source"])) == 0
    cases = [c for c in REFUSED if c != "truncated_mp3"]  # MP3 needs a .mp3 name; its refusal is tested there
    expected = []
    assert len(cases) == 12
    for i, case in enumerate(cases):  # training clips 0..11; 12..15 keep both classes in train
        name = f"audio/clip_{i:02d}.wav"
        victim = folder["source"] / name
        victim.unlink()
        written = _write_case(victim.with_suffix(""), case)
        if written != victim:  # FLAC/OGG cases get their own suffix: list that name in place of the WAV
            written.rename(victim)
        expected.append((name, "train", REFUSED[case][0]))
    sf.write(folder["source"] / "audio" / "clip_14.wav", np.zeros(SR, np.int16), SR, subtype="PCM_16")  # silent
    task = load_task("mine", folder["tasks"])
    data = open_task_data(task, folder["data"], require_files=False)
    found = find_bad(data)
    assert [(c.file, c.part, c.kind) for c in found] == expected
    assert "audio/clip_14.wav" not in {c.file for c in found}  # silence is valid audio
    kept = without(data, found)
    assert kept.n == N - len(cases) and not set(kept.files) & {c.file for c in found}
    assert kept.classes == data.classes and sorted(set(kept.split)) == ["test", "train", "valid"]


def test_python_api_takes_skip_bad_as_a_flag() -> None:
    from evalbench.api import OptionError, run_config

    assert run_config(skip_bad=True).skip_bad is True and run_config().skip_bad is False
    with pytest.raises(OptionError, match="skip_bad='yes': give True or False"):
        run_config(skip_bad="yes")


def test_emptying_a_training_class_or_a_whole_split_is_refused_before_any_work(folder: dict[str, Path]) -> None:
    from evalbench.data.prepare import open_task_data
    from evalbench.data.skip_bad import ExcludedClip, without
    from evalbench.errors import DataError
    from evalbench.specs.task import load_task

    assert _cli(folder, "data", "prepare", "mine", "--source", str(folder["source"])) == 0
    data = open_task_data(load_task("mine", folder["tasks"]), folder["data"])

    def clips(rows: range) -> list[ExcludedClip]:
        return [ExcludedClip(data.files[i], str(data.split[i]), "unreadable", "x") for i in rows]

    with pytest.raises(DataError, match=r"leaves class 'high' with no clip in train \(it had 8;"):
        without(data, clips(range(1, 16, 2)))  # every "high" training clip
    with pytest.raises(DataError, match=r"leaves valid with no clip \(it had 4: 'audio/clip_16.wav'"):
        without(data, clips(range(16, 20)))
    assert without(data, []) is data  # nothing excluded: the task's own data, untouched
    kept = without(data, clips(range(1, 14, 2)))  # 7 of the 8: one "high" training clip remains
    assert kept.n == N - 7 and list(kept.y[kept.split == "train"]).count(1) == 1
