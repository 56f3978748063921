"""The Python API: the README's example runs, the records are `run`'s, options map to RunConfig, import is cheap."""

from __future__ import annotations

import dataclasses
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

import evalbench
from evalbench.api import OptionError, run_config
from evalbench.results.frame import Results, TaskResult
from tests.conftest import REPO, Env

README_MARKER = "<!-- python-api example: run by tests/unit/test_api.py -->"
HEAVY = ("torch", "torchaudio", "sklearn", "pandas")


def readme_example() -> str:
    """The Python code block that follows the marker in README.md."""
    text = (REPO / "README.md").read_text(encoding="utf-8")
    assert text.count(README_MARKER) == 1, f"README.md must hold the marker {README_MARKER!r} once"
    block = re.match(r"\s*```python\n(.*?)\n```", text.split(README_MARKER, 1)[1], re.DOTALL)
    assert block, "the marker must be followed by a ```python code block"
    return block.group(1)


def test_import_does_not_load_torch() -> None:
    code = (
        "import json, sys, evalbench\n"
        "assert callable(evalbench.evaluate) and callable(evalbench.load_results)\n"
        f"print(json.dumps([m for m in {HEAVY!r} if m in sys.modules]))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, check=True)
    assert json.loads(out.stdout) == []


def test_readme_example_runs_and_writes_the_records_run_writes(env: Env, capsys: pytest.CaptureFixture) -> None:
    """The README's example, against tmp folders (``env`` sets EVALBENCH_*): logmel × synth_pitch, one seed."""
    from evalbench.cli import main

    real = evalbench.evaluate

    def one_seed(*args: object, **kwargs: object) -> Results:  # the example as written, with one seed
        return real(*args, **{"seeds": 1, **kwargs})

    namespace: dict = {}
    with pytest.MonkeyPatch.context() as patch:  # not the `env` fixture's monkeypatch: its folders must stay
        patch.setattr(evalbench, "evaluate", one_seed)
        exec(compile(readme_example(), "README.md (Python API)", "exec"), namespace)
    results = namespace["results"]
    assert isinstance(results, Results) and len(results) == 1
    result = results[0]
    path = env.results / "logmel" / "synth_pitch.linear.json"
    assert result.path == path and result.status == "written" and result.record.seeds == [42]
    assert result.metric == "accuracy" and 0 < result.score <= 1 and result.ci95[0] <= result.score <= result.ci95[1]
    frame = results.to_frame()
    assert set(frame.split) == {"test", "valid"} and frame.primary.sum() == 2
    board = namespace["board"]
    assert isinstance(board, pd.DataFrame) and board.record.tolist() == ["logmel/synth_pitch.linear.json"]
    assert board.loc[0, "mean"] == result.score and board.loc[0, "suites"] == "synth"

    # `evalbench run` finds the API's record up to date at the same path ...
    capsys.readouterr()
    cli = ("--encoder", "logmel", "--tasks", "synth_pitch", "--seeds", "1")
    assert main(env.cli("run", *cli)) == 0
    assert f"up to date ({path})" in capsys.readouterr().out
    assert evalbench.evaluate("logmel", "synth_pitch", seeds=1, log=None)[0].status == "up to date"

    # ... and writes the same record when asked to compute it elsewhere (all but the time stamp and timings).
    other = env.results.parent / "cli-results"
    assert main([*env.cli("run", *cli), "--results-dir", str(other)]) == 0
    written = json.loads((other / "logmel" / "synth_pitch.linear.json").read_text(encoding="utf-8"))
    for rec in (written, api := json.loads(path.read_text(encoding="utf-8"))):
        del rec["created"], rec["timings"]
    assert written == api


def test_options_map_to_run_config(env: Env) -> None:
    from evalbench import paths
    from evalbench.runner import RunConfig

    defaults = RunConfig(data_root=paths.data_root(), cache_dir=paths.cache_root(), results_dir=paths.results_dir())
    assert run_config() == defaults and defaults.results_dir == env.results  # run's folders and defaults
    cfg = run_config(
        "mlp",
        seeds=3,
        protocol="hear",
        probe_options={"search": "grid"},
        device="cpu",
        overwrite=True,
        batch_size=8,
        workers="auto",
        precision="bf16",
        tf32=True,
        allow_contaminated=True,
        results_dir=env.results / "elsewhere",
    )
    assert cfg.probe == "mlp" and cfg.seeds == [42, 43, 44] and cfg.protocol == "hear"
    assert cfg.probe_options == {"search": "grid"} and cfg.workers is None and cfg.batch_size == 8
    assert (cfg.overwrite, cfg.tf32, cfg.allow_contaminated, cfg.precision) == (True, True, True, "bf16")
    assert cfg.results_dir == env.results / "elsewhere" and cfg.cache_dir == env.cache
    assert run_config(seeds=[7, 9]).seeds == [7, 9] and run_config(workers=2).workers == 2


def test_unknown_option_is_named_with_the_valid_ones() -> None:
    from evalbench.runner import RunConfig

    valid = sorted(f.name for f in dataclasses.fields(RunConfig) if f.name not in ("probe", "encoder_dirs"))
    with pytest.raises(OptionError) as info:
        evalbench.evaluate("logmel", "synth_pitch", seed=1)
    assert str(info.value) == (
        f"evaluate(): unknown option 'seed' (did you mean 'seeds'?); valid options: {', '.join(valid)}"
    )
    assert isinstance(info.value, TypeError)  # as Python reports a bad keyword argument
    with pytest.raises(OptionError, match=r"unknown option 'gpu'; valid options: allow_contaminated, batch_size"):
        run_config(gpu=True)


@pytest.mark.parametrize(
    ("option", "value", "message"),
    [
        ("seeds", 0, "seeds=0: give a count"),
        ("seeds", [42, 42], r"seeds=\[42, 42\]: give a count"),
        ("seeds", "3", "seeds='3': give a count"),
        ("batch_size", 0, "batch_size=0: give an integer >= 1"),
        ("workers", -1, "workers=-1: give a number of worker processes >= 0, or 'auto'"),
        ("overwrite", "yes", "overwrite='yes': give True or False"),
    ],
)
def test_bad_option_values_are_refused(option: str, value: object, message: str) -> None:
    with pytest.raises(OptionError, match=message):
        run_config(**{option: value})


def test_checkpoint_with_several_encoders_needs_a_mapping(tmp_path: Path) -> None:
    weights = tmp_path / "w.pt"
    weights.write_bytes(b"0")
    with pytest.raises(OptionError, match=r"needs exactly one encoder, got 2 \(logmel, randproj\)"):
        evalbench.evaluate(["logmel", "randproj"], "synth_pitch", checkpoint=weights)
    with pytest.raises(OptionError, match=r"checkpoint: 'byola' is not one of the encoders \(logmel, randproj\)"):
        evalbench.evaluate("logmel,randproj", "synth_pitch", checkpoint={"byola": weights})
    with pytest.raises(OptionError, match="encoder=3: give a name"):
        evalbench.evaluate(3, "synth_pitch")


def test_load_results_is_the_leaderboard_csv(tmp_path: Path) -> None:
    from evalbench.results.tables import write_leaderboard

    for record in (REPO / "results").glob("*/*.json"):
        (tmp_path / record.parent.name).mkdir(exist_ok=True)
        shutil.copy(record, tmp_path / record.parent.name / record.name)
    write_leaderboard(tmp_path)
    frame = evalbench.load_results(tmp_path)
    assert frame.to_csv(index=False, lineterminator="\n") == (tmp_path / "leaderboard.csv").read_text(encoding="utf-8")
    assert len(frame) == len(list(tmp_path.glob("*/*.json"))) and "synth" in set(frame.suites)
    assert evalbench.load_results(tmp_path / "empty").empty


def test_records_unfold_into_runs_and_folds() -> None:
    results = evalbench.load_records(REPO / "results")
    assert len(results) == len(list((REPO / "results").glob("*/*.json"))) and {r.status for r in results} == {"loaded"}
    kfold = next(r for r in results if r.record.task.split.type == "folds")
    folds = kfold.folds_frame()
    expected = kfold.record.scores.test[kfold.metric].fold_means
    assert folds[folds.metric == kfold.metric]["mean"].tolist() == pytest.approx(expected)
    runs = kfold.runs_frame()
    assert len(runs) == len(kfold.record.runs) and f"test_{kfold.metric}" in runs and runs.fold.notna().all()
    fixed = next(r for r in results if r.record.task.split.type == "fixed")
    assert fixed.folds_frame().empty and fixed.runs_frame().fold.isna().all()
    assert len(results.to_frame()) == sum(2 * len(r.record.task.metrics) for r in results)
    assert not results.folds_frame().empty and "logmel" in repr(results)


def test_an_old_record_reads_too() -> None:
    """A record written by evalbench 0.1.0 lacks the interval and later keys: the API shows them as missing."""
    path = next((REPO / "tests" / "data" / "records").glob("v1-evalbench-0.1.0-*.json"))
    result = TaskResult.load(path)
    assert result.ci95 is None and result.record.compute is None and result.record.probe.preset is None
    frame = result.to_frame()
    assert frame.ci95_low.isna().all() and frame.fold_std.notna().all()
    assert len(result.folds_frame()) == 5 * len(result.record.task.metrics)
