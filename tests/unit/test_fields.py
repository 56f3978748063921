"""Typed spec parsing: every error names file, key and value."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import pytest

from evalbench.errors import SpecError
from evalbench.specs.fields import parse, to_dict
from evalbench.specs.yaml_io import load_yaml


@dataclass(frozen=True)
class Inner:
    kind: Literal["a", "b"]
    rate: float = 1.0

    def __post_init__(self) -> None:
        if self.rate <= 0:
            raise ValueError(f"rate: must be positive, got {self.rate}")


@dataclass(frozen=True)
class Outer:
    name: str
    count: int
    inner: Inner
    tags: list[str] = field(default_factory=list)
    flag: bool = False
    maybe: int | None = None


def test_parses_nested_and_defaults() -> None:
    spec = parse(Outer, {"name": "x", "count": 3, "inner": {"kind": "b", "rate": 2}}, "f.yaml")
    assert spec == Outer("x", 3, Inner("b", 2.0))
    assert isinstance(spec.inner.rate, float)
    assert to_dict(spec) == {
        "name": "x",
        "count": 3,
        "inner": {"kind": "b", "rate": 2.0},
        "tags": [],
        "flag": False,
        "maybe": None,
    }


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        ({"name": "x", "count": 3, "inner": {"kind": "c"}}, "f.yaml: inner.kind: 'c' is not one of 'a', 'b'"),
        ({"name": "x", "count": "3", "inner": {"kind": "a"}}, "f.yaml: count: expected an integer, got '3'"),
        (
            {"name": "x", "count": True, "inner": {"kind": "a"}},
            "f.yaml: count: expected an integer, got True",
        ),
        ({"name": "x", "inner": {"kind": "a"}}, "f.yaml: count: missing required key (an integer)"),
        (
            {"name": "x", "count": 1, "inner": {"kind": "a"}, "cuont": 1},
            "f.yaml: cuont: unknown key; did you mean 'count'?",
        ),
        (
            {"name": "x", "count": 1, "inner": {"kind": "a", "rate": -1}},
            "f.yaml: inner.rate: must be positive, got -1.0",
        ),
        (
            {"name": "x", "count": 1, "inner": {"kind": "a"}, "tags": ["a", 2]},
            "f.yaml: tags[1]: expected a string, got 2",
        ),
        (
            {"name": "x", "count": 1, "inner": {"kind": "a"}, "flag": "yes"},
            "f.yaml: flag: expected true or false, got 'yes'",
        ),
        ({"name": "x", "count": 1, "inner": "a"}, "f.yaml: inner: expected a mapping, got 'a'"),
    ],
)
def test_errors_name_file_key_and_value(data: dict, expected: str) -> None:
    with pytest.raises(SpecError) as err:
        parse(Outer, data, "f.yaml")
    assert str(err.value) == expected


def test_include_deep_merges_and_detects_cycles(tmp_path) -> None:
    (tmp_path / "base.yaml").write_text("audio: {sample_rate: 16000, clip_seconds: 1.0}\nname: base\n")
    (tmp_path / "child.yaml").write_text("include: base.yaml\nname: child\naudio: {clip_seconds: 2.0}\n")
    assert load_yaml(tmp_path / "child.yaml") == {
        "name": "child",
        "audio": {"sample_rate": 16000, "clip_seconds": 2.0},
    }
    (tmp_path / "a.yaml").write_text("include: b.yaml\n")
    (tmp_path / "b.yaml").write_text("include: a.yaml\n")
    with pytest.raises(SpecError, match="circular include"):
        load_yaml(tmp_path / "a.yaml")
    (tmp_path / "c.yaml").write_text("include: missing.yaml\n")
    with pytest.raises(SpecError, match=r"include: 'missing\.yaml' not found"):
        load_yaml(tmp_path / "c.yaml")
    (tmp_path / "list.yaml").write_text("- 1\n- 2\n")
    with pytest.raises(SpecError, match="expected a mapping of keys"):
        load_yaml(tmp_path / "list.yaml")
