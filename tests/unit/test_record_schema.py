"""The JSON Schema of a run record: generated, committed, met by every record, and by migrated old records."""

from __future__ import annotations

import copy
import dataclasses
import json
import re
import subprocess
import sys
import typing
from pathlib import Path

import pytest

from evalbench.results import schema
from evalbench.results.record import AudioInfo, MetricName, Precision, Role, ValidationInfo, parse_record
from evalbench.results.schema import SCHEMA_VERSION, load_record, render_json_schema, schema_errors
from tests.conftest import REPO, Env

COMMITTED = REPO / "results" / "schema.json"
RECORDS = sorted((REPO / "results").glob("*/*.json"))
FROZEN = sorted((REPO / "tests" / "data" / "records").glob("v*.json"))


@pytest.fixture(scope="module")
def committed() -> dict:
    return json.loads(COMMITTED.read_text(encoding="utf-8"))


def test_committed_schema_is_the_generated_one() -> None:
    assert COMMITTED.read_text(encoding="utf-8") == render_json_schema(), (
        "results/schema.json is out of date: regenerate it with `python -m evalbench.results.schema`"
    )


def test_schema_command_regenerates_and_checks(tmp_path: Path) -> None:
    out = tmp_path / "schema.json"
    command = [sys.executable, "-m", "evalbench.results.schema"]
    assert subprocess.run([*command, str(out), "--check"], capture_output=True, cwd=REPO).returncode == 1
    assert subprocess.run([*command, str(out)], capture_output=True, cwd=REPO).returncode == 0
    assert out.read_text(encoding="utf-8") == COMMITTED.read_text(encoding="utf-8")
    assert subprocess.run([*command, str(out), "--check"], capture_output=True, cwd=REPO).returncode == 0


def test_every_field_is_described_and_required_unless_marked(committed: dict) -> None:
    objects = [committed, *committed["$defs"].values()]
    assert {d["type"] for d in objects} == {"object"} and all(d["additionalProperties"] is False for d in objects)
    assert all(p["description"] for d in objects for p in d["properties"].values())
    top = committed["required"]
    assert top[:3] == ["schema_version", "evalbench_version", "git"] and "compute" not in top
    assert committed["properties"]["schema_version"]["const"] == SCHEMA_VERSION
    assert "ci95" not in committed["$defs"]["MetricSummary"]["required"]


@pytest.mark.parametrize("path", RECORDS, ids=[str(p.relative_to(REPO)) for p in RECORDS])
def test_committed_record_meets_the_schema(path: Path, committed: dict) -> None:
    record = load_record(path)
    assert schema_errors(record, committed) == []
    parse_record(record, str(path))  # the typed form reads it too


def test_there_are_committed_records() -> None:
    assert len(RECORDS) >= 10


# --- Migrations -----------------------------------------------------------------------------------------------------


def _version(path: Path) -> int:
    return int(re.match(r"v(\d+)-", path.name).group(1))


def test_every_older_version_has_a_migration_and_a_frozen_record() -> None:
    """Bumping SCHEMA_VERSION without a migration from the previous version and a frozen record of it fails here."""
    assert set(schema.MIGRATIONS) == set(range(1, SCHEMA_VERSION))
    frozen = {_version(p) for p in FROZEN}
    assert set(range(1, SCHEMA_VERSION)) <= frozen and frozen <= set(range(1, SCHEMA_VERSION + 1))
    assert FROZEN, "no frozen record under tests/data/records/"


@pytest.mark.parametrize("path", FROZEN, ids=[p.name for p in FROZEN])
def test_frozen_record_migrates_to_a_valid_record(path: Path, committed: dict) -> None:
    raw = json.loads(path.read_text(encoding="utf-8"))
    assert raw["schema_version"] == _version(path) and raw["schema_version"] <= SCHEMA_VERSION
    record = load_record(path)  # applies MIGRATIONS, then the score checks
    assert record["schema_version"] == SCHEMA_VERSION
    assert schema_errors(record, committed) == []
    typed = parse_record(record, str(path))
    assert typed.task.name == raw["task"]["name"] and typed.encoder.name == raw["encoder"]["name"]


def test_frozen_v1_record_is_the_original_shape() -> None:
    """The fixture predates every key version 1 gained later: the schema must keep them optional."""
    raw = json.loads(FROZEN[0].read_text(encoding="utf-8"))
    assert raw["evalbench_version"] == "0.1.0" and "compute" not in raw and "preset" not in raw["probe"]
    assert "ci95" not in raw["scores"]["test"][raw["task"]["primary_metric"]]
    assert "fold_means" in raw["scores"]["test"]["accuracy"]  # a k-fold task: the per-fold keys are exercised


def test_migrations_run_in_order_on_load(monkeypatch: pytest.MonkeyPatch, committed: dict) -> None:
    """The upgrade path a bump will take: the frozen record goes through MIGRATIONS[1] on load."""
    seen = []

    def to_2(record: dict) -> dict:
        seen.append(record["schema_version"])
        return {**record, "schema_version": 2}

    monkeypatch.setattr(schema, "SCHEMA_VERSION", 2)
    monkeypatch.setattr(schema, "MIGRATIONS", {1: to_2})
    record = load_record(FROZEN[0])
    assert seen == [1] and record["schema_version"] == 2
    assert [e for e in schema_errors(record, committed) if "schema_version" not in e] == []


# --- Records as written now -------------------------------------------------------------------------------------


def test_records_written_now_meet_the_schema(env: Env, committed: dict) -> None:
    """A fixed split, a k-fold task and regression, as `evalbench run` writes them (catches writer drift)."""
    from evalbench.cli import main
    from evalbench.embed.contamination import Overlap

    tasks = "synth_pitch,synth_timbre,synth_pitch_reg"
    assert main(env.cli("run", "--encoder", "logmel", "--tasks", tasks, "--seeds", "1")) == 0
    paths = sorted(env.results.glob("logmel/*.json"))
    assert len(paths) == 3
    for path in paths:
        record = json.loads(path.read_text(encoding="utf-8"))
        assert {"compute", "timings"} <= set(record) and "stages_s" in record["timings"]
        assert schema_errors(record, committed) == [], path.name
    contaminated = {
        **record,
        "contamination": Overlap("logmel", "synth_pitch_reg", 2, 10, ["a.wav", "b.wav"]).as_record(),
    }
    assert schema_errors(contaminated, committed) == []


def test_schema_rejects_what_is_wrong(committed: dict) -> None:
    record = load_record(RECORDS[0])
    assert schema_errors(record, committed) == []

    def errors(change: typing.Callable[[dict], None]) -> list[str]:
        broken = copy.deepcopy(record)
        change(broken)
        return schema_errors(broken, committed)

    assert errors(lambda r: r.pop("runs")) == ["$: missing required key 'runs'"]
    assert errors(lambda r: r.update(extra=1)) == ["$.extra: unknown key"]
    assert errors(lambda r: r["task"].update(label_type="ordinal"))[0].startswith('$.task.label_type: "ordinal"')
    assert errors(lambda r: r["encoder"].update(embedding_dim="128")) == [
        '$.encoder.embedding_dim: "128" is not of type integer'
    ]
    assert errors(lambda r: r["encoder"].update(embedding_dim=True))  # true is not an integer
    assert errors(lambda r: r["encoder"].update(embedding_dim=128.0)) == []  # 128.0 is (JSON Schema)
    assert errors(lambda r: r["scores"]["test"].update(accuracy_top5=r["scores"]["test"]["accuracy"]))
    assert errors(lambda r: r["runs"][0].update(fold="1")) == ['$.runs[0].fold: "1" is not of type integer or null']
    assert errors(lambda r: r.update(schema_version=SCHEMA_VERSION + 1))[0].startswith("$.schema_version:")
    ci = "$.scores.test.accuracy.ci95"
    assert errors(lambda r: r["scores"]["test"]["accuracy"].update(ci95=[0.1, 0.2])) == [
        f"{ci}: [0.1, 0.2] matches none of the 2 allowed forms"
    ]


def test_validator_refuses_keywords_it_does_not_implement() -> None:
    with pytest.raises(ValueError, match="unsupported JSON Schema keyword"):
        schema_errors(3, {"type": "integer", "minimum": 5})
    assert schema_errors(3, {"anyOf": [{"type": "string"}, {"enum": [3]}]}) == []
    assert schema_errors({"a": 1}, {"$defs": {"X": {"type": "string"}}, "additionalProperties": {"$ref": "#/$defs/X"}})


# --- The dataclasses follow what they describe ------------------------------------------------------------------


def test_record_classes_follow_the_specs_they_copy() -> None:
    from evalbench.metric_info import HIGHER_IS_BETTER
    from evalbench.presets import ROLES
    from evalbench.specs.task import AudioSpec, ValidationSpec
    from evalbench.utils.precision import PRECISIONS

    def names(cls: type) -> list[str]:
        return [f.name for f in dataclasses.fields(cls)]

    assert names(AudioInfo) == names(AudioSpec) and names(ValidationInfo) == names(ValidationSpec)

    def literals(tp: object) -> set:  # the values of a Literal, or of the Literals of a union (Optional[...])
        if typing.get_origin(tp) is typing.Literal:
            return set(typing.get_args(tp))
        return set().union(*(literals(a) for a in typing.get_args(tp)))

    rule = typing.get_type_hints(ValidationSpec)["rule"]  # a record's rule is always stated (SplitSpec fills it)
    assert (
        literals(typing.get_type_hints(ValidationInfo)["rule"])
        == literals(rule)
        == {"official", "holdout", "next_fold"}
    )
    assert typing.get_args(Precision) == PRECISIONS and typing.get_args(MetricName) == tuple(HIGHER_IS_BETTER)
    assert typing.get_args(Role) == ROLES
