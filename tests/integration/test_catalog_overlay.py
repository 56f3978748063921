"""The spec catalog ships in the wheel, and user spec folders overlay it (add, override by name, show the source)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import yaml

from evalbench import paths
from evalbench.cli import main
from evalbench.errors import EvalbenchError, UnknownNameError
from evalbench.specs.encoder import load_encoder
from evalbench.specs.task import load_task, resolve_tasks

REPO = Path(__file__).resolve().parents[2]
BUILTIN_TASKS = sorted(p.stem for p in (REPO / "tasks").glob("*.yaml"))


def user_task(folder: Path, name: str, description: str, per_class: int = 6) -> Path:
    """A user copy of ``synth_pitch`` named ``name`` (its include points at the built-in base by absolute path)."""
    spec = yaml.safe_load((REPO / "tasks" / "synth_pitch.yaml").read_text())
    spec.update(name=name, description=description, include=str(REPO / "tasks" / "_base" / "synthetic.yaml"))
    spec["dataset"]["options"]["per_class"] = per_class
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path


@pytest.fixture
def in_empty_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The working folder is an empty folder, and no EVALBENCH_* folder variable is set."""
    for var in ("EVALBENCH_TASKS_DIR", "EVALBENCH_ENCODERS_DIR", "EVALBENCH_HOME"):
        monkeypatch.delenv(var, raising=False)
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    return work


def test_a_user_folder_adds_tasks_beside_the_built_in_ones(in_empty_folder: Path, tmp_path: Path) -> None:
    mine = tmp_path / "mine"
    user_task(mine, "my_pitch", "my own pitch task")
    dirs = paths.task_dirs(mine)
    assert dirs[0] == paths.builtin_catalog() / "tasks" and dirs[-1] == mine
    assert [t.name for t in resolve_tasks("my_pitch,esc50", dirs)] == ["my_pitch", "esc50"]


def test_a_user_spec_overrides_the_built_in_one_of_the_same_name(
    in_empty_folder: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    user_task(in_empty_folder / "tasks", "synth_pitch", "overridden in ./tasks")
    assert load_task("synth_pitch", paths.task_dirs()).description == "overridden in ./tasks"
    assert main(["tasks", "list"]) == 0
    rows = {line.split()[0]: line for line in capsys.readouterr().out.splitlines()[2:] if line.strip()}
    assert f"{in_empty_folder / 'tasks'} (overrides built-in)" in rows["synth_pitch"]
    assert "built-in" in rows["esc50"] and "overrides" not in rows["esc50"]
    assert set(BUILTIN_TASKS) <= set(rows)  # the built-in catalog is still there


def test_precedence_is_flag_over_variable_over_working_folder(
    in_empty_folder: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    user_task(in_empty_folder / "tasks", "t", "from ./tasks")
    user_task(tmp_path / "env", "t", "from the variable")
    user_task(tmp_path / "flag", "t", "from the flag")
    assert load_task("t", paths.task_dirs()).description == "from ./tasks"
    monkeypatch.setenv("EVALBENCH_TASKS_DIR", str(tmp_path / "env"))
    assert load_task("t", paths.task_dirs()).description == "from the variable"
    assert load_task("t", paths.task_dirs(tmp_path / "flag")).description == "from the flag"


def test_a_suite_in_a_user_folder_may_name_built_in_tasks(in_empty_folder: Path) -> None:
    suites = in_empty_folder / "tasks" / "suites"
    suites.mkdir(parents=True)
    (suites / "mix.yaml").write_text(yaml.safe_dump({"name": "mix", "description": "d", "tasks": ["esc50", "mine"]}))
    user_task(in_empty_folder / "tasks", "mine", "mine")
    assert [t.name for t in resolve_tasks("mix", paths.task_dirs())] == ["esc50", "mine"]
    assert main(["tasks", "validate"]) == 0


def test_unknown_names_and_missing_folders_are_clear(in_empty_folder: Path, tmp_path: Path) -> None:
    with pytest.raises(UnknownNameError, match=r"unknown task or suite 'esc5' .*did you mean 'esc50'"):
        load_task("esc5", paths.task_dirs())
    with pytest.raises(EvalbenchError, match=r"--tasks-dir .*nowhere: no such folder"):
        paths.task_dirs(tmp_path / "nowhere")


def test_built_in_weights_are_found_in_the_user_encoders_folder(
    in_empty_folder: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spec = load_encoder("byola", paths.encoder_dirs())
    relative = Path(spec.checkpoint.path)
    if (paths.builtin_catalog() / "encoders" / relative).is_file():
        pytest.skip("the official weights are installed in the catalog folder itself")
    assert spec.checkpoint_path() == in_empty_folder / "encoders" / relative  # where the user is told to put them
    weights = tmp_path / "mine" / relative
    weights.parent.mkdir(parents=True)
    weights.write_bytes(b"not really weights")
    monkeypatch.setenv("EVALBENCH_ENCODERS_DIR", str(tmp_path / "mine"))
    assert load_encoder("byola", paths.encoder_dirs()).checkpoint_path() == weights


def test_pretrain_writes_into_the_user_folder_never_the_catalog(in_empty_folder: Path, tmp_path: Path) -> None:
    assert paths.user_encoders_dir() == in_empty_folder / "encoders"
    assert paths.user_encoders_dir(tmp_path / "x") == tmp_path / "x"
    assert not paths.is_builtin(paths.user_encoders_dir() / "anything.yaml")


def _copy_source(dest: Path) -> Path:
    """The files a source distribution holds (no .venv, .git, results, checkpoints or build output)."""
    ignore = shutil.ignore_patterns(
        ".venv", ".git", "results", "checkpoints", "build", "dist", "*.egg-info", "__pycache__", ".*cache", "tests"
    )
    shutil.copytree(REPO, dest, ignore=ignore)
    return dest


@pytest.mark.slow
def test_a_wheel_ships_the_catalog_and_runs_outside_a_checkout(tmp_path: Path) -> None:
    source = _copy_source(tmp_path / "src")
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check"]
    build = [*pip, "wheel", str(source), "--no-deps", "--no-build-isolation", "-q", "-w", str(tmp_path / "dist")]
    subprocess.run(build, check=True, capture_output=True, cwd=tmp_path)
    (wheel,) = (tmp_path / "dist").glob("evalbench-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    shipped = {n.removeprefix("evalbench/_catalog/tasks/")[:-5] for n in names if n.count("/") == 3 and "tasks/" in n}
    assert set(BUILTIN_TASKS) <= shipped
    assert "evalbench/_catalog/encoders/recipes/byola.yaml" in names
    assert not [n for n in names if n.startswith("evalbench/_catalog/encoders/checkpoints")]
    subprocess.run([*pip, "install", "--no-deps", "-q", "--target", str(tmp_path / "site"), str(wheel)],
                   check=True, capture_output=True)  # fmt: skip

    work = tmp_path / "work"
    user_task(work / "tasks", "my_pitch", "a user task beside the built-in ones")
    env = {k: v for k, v in os.environ.items() if not k.startswith("EVALBENCH_")}
    env["PYTHONPATH"] = str(tmp_path / "site")

    def evalbench(*args: str) -> str:
        proc = subprocess.run([sys.executable, "-m", "evalbench", *args], cwd=work, env=env, capture_output=True,
                              text=True, timeout=300)  # fmt: skip
        assert proc.returncode == 0, proc.stderr
        return proc.stdout

    where = subprocess.run([sys.executable, "-c", "import evalbench; print(evalbench.__file__)"], cwd=work, env=env,
                           capture_output=True, text=True, check=True).stdout  # fmt: skip
    assert where.startswith(str(tmp_path / "site"))  # the wheel's copy, not the checkout
    listing = evalbench("tasks", "list")
    assert "esc50" in listing and "built-in" in listing and "my_pitch" in listing
    assert str(work / "tasks") in listing
    assert "logmel" in evalbench("encoders", "list")
    out = tmp_path / "out"
    ran = evalbench("run", "--encoder", "logmel", "--tasks", "my_pitch", "--seeds", "1", "--data-root", str(out / "d"),
                    "--cache-dir", str(out / "c"), "--results-dir", str(out / "r"))  # fmt: skip
    assert "1 record(s) written" in ran
    assert len(list((out / "r").rglob("*.json"))) >= 1
