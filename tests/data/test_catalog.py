"""The generated task catalog: rows per task, how to obtain each dataset, and the committed tasks/README.md."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from evalbench.cli import main
from evalbench.data.catalog import GENERATED_NOTE, render, write
from evalbench.errors import SpecError
from evalbench.paths import task_dirs
from tests.data.helpers import TASKS
from tests.data.test_download import write_task

URL = "https://example.org/data/mydata.zip"


def _rows(text: str) -> dict[str, list[str]]:
    """Catalog table rows by task name (cells stripped)."""
    rows = {}
    for line in text.splitlines():
        cells = [c.strip() for c in line.strip("|").split("|")]
        if line.startswith("| ") and len(cells) == 8 and cells[0] not in ("task", ""):
            rows[cells[0]] = cells[1:]
    return rows


@pytest.fixture
def tasks_dir(tmp_path: Path) -> Path:
    """Two downloadable tasks sharing a source, a manual one, an embedded one and a suite."""
    tasks = tmp_path / "tasks"
    shared = {
        "id": "shared",
        "homepage": "https://example.org",
        "license": "CC BY 4.0",
        "download": [{"url": URL, "sha256": "0" * 64}, {"url": "https://example.org/split.txt", "extract": False}],
        "root": "mydata",
    }
    write_task(tasks, shared, name="alpha")
    write_task(tasks, shared, name="beta")
    write_task(tasks, {"manual": "Ask the authors for corpus.zip | unzip it."}, name="gamma")
    folds = (tasks / "beta.yaml").read_text().replace("type: fixed", "type: folds\n  folds: 5\n  validation:")
    folds = folds.replace("validation:\n", "validation: {rule: holdout, fraction: 0.2, grouped: true}\n")
    (tasks / "beta.yaml").write_text(folds.replace("- accuracy", "- roc_auc\n- accuracy"))
    gamma = (tasks / "gamma.yaml").read_text()
    (tasks / "gamma.yaml").write_text(
        gamma.replace("  classes:\n  - low\n  - high\n", "").replace("version: 1", "version: 3")
    )
    shutil.copy(TASKS / "synth_pitch.yaml", tasks / "synth_pitch.yaml")
    shutil.copytree(TASKS / "_base", tasks / "_base")
    (tasks / "suites").mkdir()
    (tasks / "suites" / "mine.yaml").write_text("name: mine\ndescription: two of them\ntasks: [alpha, gamma]\n")
    return tasks


def test_catalog_rows_and_sources(tasks_dir: Path) -> None:
    text = render(tasks_dir)
    assert text.startswith(GENERATED_NOTE)
    rows = _rows(text)
    assert list(rows) == ["alpha", "beta", "gamma", "synth_pitch"]
    assert rows["alpha"] == ["1", "single", "2", "0.5", "train/valid/test (official valid)", "**accuracy**", "manifest"]
    assert rows["beta"][4] == "5-fold; valid: 20% holdout of train folds, grouped, stratified"
    assert rows["beta"][5] == "**roc_auc**, accuracy"
    assert rows["gamma"][:3] == ["3", "single", "from data"]
    assert rows["synth_pitch"][2:4] == ["12", "1"] and rows["synth_pitch"][6] == "synthetic"
    assert "| mine    | alpha, gamma | two of them |" in text

    shared = text[text.index("### shared") : text.index("### synth_pitch")]
    assert "- Task `alpha` (v1)" in shared and "- Task `beta` (v1)" in shared and "### gamma" not in shared
    assert "- Licence: CC BY 4.0" in shared and "`evalbench data download alpha`" in shared
    assert f"  - <{URL}>: SHA-256 pinned\n" in shared
    assert "  - <https://example.org/split.txt>: SHA-256 **not pinned**" in shared and "used as is" in shared
    assert "- Official layout: `mydata` under `<data_root>/sources/shared/extracted/`." in shared
    gamma = text[text.index("### gamma") : text.index("### shared")]
    assert "- Manual download: Ask the authors for corpus.zip \\| unzip it." in gamma
    assert "- Then: `evalbench data prepare gamma --source DIR`." in gamma
    assert "- Embedded: generated on first use" in text[text.index("### synth_pitch") :]


def test_catalog_cli_prints_or_writes(tasks_dir: Path, capsys: pytest.CaptureFixture) -> None:
    overlay = task_dirs(tasks_dir)  # the built-in tasks and these: what `run` can resolve
    assert overlay[-1] == tasks_dir
    assert main(["tasks", "catalog", "--tasks-dir", str(tasks_dir)]) == 0
    printed = capsys.readouterr().out
    assert printed == render(overlay) and "| alpha " in printed and "| esc50 " in printed
    assert not (tasks_dir / "README.md").exists()
    assert main(["tasks", "catalog", "--write", "--tasks-dir", str(tasks_dir)]) == 0
    assert capsys.readouterr().out.strip() == f"wrote {tasks_dir / 'README.md'}"  # the highest-priority folder
    assert (tasks_dir / "README.md").read_text() == render(overlay) and write(overlay).is_file()


def test_invalid_spec_fails_the_catalog(tasks_dir: Path, capsys: pytest.CaptureFixture) -> None:
    (tasks_dir / "alpha.yaml").write_text((tasks_dir / "alpha.yaml").read_text().replace("version: 1", "version: 0"))
    with pytest.raises(SpecError, match=r"alpha\.yaml: version"):
        render(tasks_dir)
    assert main(["tasks", "catalog", "--tasks-dir", str(tasks_dir)]) == 2
    assert "alpha.yaml: version" in capsys.readouterr().err


def test_committed_catalog_is_up_to_date() -> None:
    committed = TASKS / "README.md"
    if not committed.is_file():
        pytest.skip("tasks/README.md is not generated yet; run `evalbench tasks catalog --write`")
    assert committed.read_text(encoding="utf-8") == render(TASKS), (
        "tasks/README.md is stale; regenerate it with `evalbench tasks catalog --write`"
    )
