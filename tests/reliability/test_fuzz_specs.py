"""Fuzzing task YAML: any spec gives a valid :class:`TaskSpec` or a spec error naming the file.

:func:`evalbench.specs.task.parse_task_file` gets a valid spec mutated by
dropping, replacing and inserting keys (wrong types, out-of-range numbers, NaN,
unicode, nested junk), plus arbitrary text and bytes.  Either a
:class:`TaskSpec` that satisfies every invariant the rest of the code relies
on, or a :class:`SpecError` naming the file.  Faults the fuzzer found (alias
bombs, non-UTF-8 files, non-text keys, NaN bounds) are pinned at the end.
"""

from __future__ import annotations

import copy
import datetime
import math
from pathlib import Path
from typing import Any

import yaml
from hypothesis import given
from hypothesis import strategies as st

from evalbench.errors import SpecError
from evalbench.metric_info import LABEL_TYPES
from evalbench.registry import METRICS
from evalbench.specs.task import TaskSpec, parse_task_file
from tests.reliability.fuzzing import FEW, FUZZ, count_event, fresh

BASE_SPEC: dict[str, Any] = {
    "name": "fuzzed",
    "version": 1,
    "description": "a fuzzed task",
    "dataset": {"builder": "manifest", "options": {"seed": 0}, "min_seconds": 0.0, "max_seconds": 30.0},
    "audio": {"sample_rate": 16000, "clip_seconds": 1.0, "crop": "start", "crop_seed": 0},
    "labels": {"type": "single", "classes": ["a", "b", "c"]},
    "splits": {"type": "folds", "folds": 5, "validation": {"rule": "holdout", "fraction": 0.1}},
    "metrics": ["accuracy", "roc_auc"],
}
# Values that are valid somewhere in a spec, so mutations also produce other *valid* specs, not only broken ones.
DOMAIN = [
    "", "fixed", "folds", "start", "center", "random", "single", "binary", "multilabel", "regression",
    "holdout", "official", "next_fold", "accuracy", "roc_auc", "map", "mae", "r2", "synthetic", "manifest",
    "fuzzed", 0, 1, 2, 3, 5, -1, 0.05, 0.5, 3600, 3600.5, 1e-9, 16000, [], {}, ["a"], ["a", "a"], ["a,b", "c"],
    ["x", "y"], [" ", "z"], ["map"], ["accuracy", "map"], datetime.date(2020, 1, 1),
]  # fmt: skip
KEYS = [
    "include", "classes", "folds", "allow_missing_in_train", "exclude", "source", "max_seconds", "min_seconds",
    "rule", "kind", "type", "name", "fraction", "grouped", "crop", "options", "download", "url", "sha256",
]  # fmt: skip

scalars = (
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=12)
    | st.sampled_from(DOMAIN)
)
# Nested junk with string keys (mappings whose keys mix types are pinned by an xfail test below).
values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=6,
)


def _paths(node: Any, prefix: tuple = ()) -> list[tuple]:
    """Every key path inside a nested dict/list (the root is ``()``)."""
    out = [prefix]
    if isinstance(node, dict):
        for k, v in node.items():
            out += _paths(v, (*prefix, k))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            out += _paths(v, (*prefix, i))
    return out


def _at(node: Any, path: tuple) -> Any:
    for p in path:
        node = node[p]
    return node


@st.composite
def mutated_specs(draw: st.DrawFn) -> dict[str, Any]:
    """The base spec after 1–4 random drops, replacements and insertions anywhere in it."""
    spec = copy.deepcopy(BASE_SPEC)
    for _ in range(draw(st.integers(1, 4))):
        path = draw(st.sampled_from(_paths(spec)))
        op = draw(st.sampled_from(["drop", "set", "insert"]))
        parent = _at(spec, path[:-1]) if path else None
        if op == "drop" and path:
            del parent[path[-1]]
        elif op == "set" and path:
            parent[path[-1]] = draw(values)
        else:
            target = _at(spec, path)
            if isinstance(target, dict):
                target[draw(st.sampled_from(KEYS) | st.text(min_size=1, max_size=8))] = draw(values)
            elif isinstance(target, list):
                target.append(draw(values))
    return spec


def check_spec_or_error(path: Path) -> TaskSpec | None:
    """Parse ``path``: a spec satisfying every invariant, or None after a SpecError naming the file."""
    try:
        spec = parse_task_file(path)
    except SpecError as exc:
        assert str(path) in str(exc), f"the error does not name the file: {exc}"
        count_event("spec refused")
        return None
    count_event("spec accepted")
    assert isinstance(spec, TaskSpec)
    assert spec.name == path.stem and spec.version >= 1
    assert len(spec.sha256) == 64
    assert isinstance(spec.audio.sample_rate, int) and spec.audio.sample_rate > 0
    assert 0 < spec.audio.clip_seconds <= 3600
    assert spec.audio.crop in ("start", "center", "random")
    assert spec.metrics and all(m in METRICS for m in spec.metrics)
    assert all(spec.labels.type in LABEL_TYPES[m] for m in spec.metrics)
    if spec.labels.classes is not None:
        classes = spec.labels.classes
        assert len(classes) >= 2 and len(set(classes)) == len(classes)
        assert all(isinstance(c, str) and c.strip() and "," not in c for c in classes)
    if spec.splits.type == "fixed":
        assert spec.splits.folds == 0 and spec.splits.validation.rule == "official"
    else:
        assert spec.splits.folds >= 2 and spec.splits.validation.rule in ("holdout", "next_fold")
    assert 0 < spec.splits.validation.fraction < 0.5
    bounds = (spec.dataset.min_seconds, spec.dataset.max_seconds)
    assert not math.isnan(bounds[0]) and (bounds[1] is None or bounds[1] >= bounds[0])
    return spec


@FUZZ
@given(spec=mutated_specs())
def test_mutated_task_yaml_gives_a_valid_spec_or_a_spec_error_naming_the_file(scratch: Path, spec: dict) -> None:
    path = fresh(scratch, "yaml") / "fuzzed.yaml"
    path.write_text(yaml.safe_dump(spec, allow_unicode=True, sort_keys=False), encoding="utf-8")
    check_spec_or_error(path)


def test_the_unmutated_base_spec_is_accepted(scratch: Path) -> None:
    """The fuzzer's starting point is valid, so rejections above come from the mutations."""
    path = fresh(scratch, "yaml") / "fuzzed.yaml"
    path.write_text(yaml.safe_dump(BASE_SPEC, sort_keys=False), encoding="utf-8")
    spec = check_spec_or_error(path)
    assert spec is not None and spec.splits.folds == 5 and spec.labels.classes == ["a", "b", "c"]


YAML_PYTHON_TAG = "!!python/object/apply:os.system [echo]"  # safe_load must refuse it


@FEW
@given(text=st.text(max_size=200) | st.sampled_from(["", "---", "[1, 2]", "a: [", "*x", "{{", YAML_PYTHON_TAG]))
def test_arbitrary_text_as_task_yaml_gives_a_spec_error_naming_the_file(scratch: Path, text: str) -> None:
    path = fresh(scratch, "yaml") / "fuzzed.yaml"
    path.write_text(text, encoding="utf-8")
    check_spec_or_error(path)


def _spec_text(options: str) -> str:
    return (
        "name: fuzzed\nversion: 1\ndescription: x\n"
        f"dataset:\n  builder: manifest\n  options: {options}\n"
        "audio: {sample_rate: 16000, clip_seconds: 1.0}\nlabels: {type: single, classes: [a, b]}\n"
        "splits: {type: fixed}\nmetrics: [accuracy]\n"
    )


def test_mixed_key_types_in_options_give_a_spec_error(tmp_path: Path) -> None:
    path = tmp_path / "fuzzed.yaml"
    path.write_text(_spec_text("{nested: {1: x, b: y}}"))
    check_spec_or_error(path)


def test_a_spec_that_is_not_utf8_gives_a_spec_error(tmp_path: Path) -> None:
    path = tmp_path / "fuzzed.yaml"
    path.write_bytes(b"name: fuzzed\ndescription: caf\xe9\n")
    check_spec_or_error(path)


def test_a_spec_whose_aliases_expand_to_a_million_nodes_is_refused(tmp_path: Path) -> None:
    lines = ["    l0: &l0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"    l{i}: &l{i} [" + ", ".join([f"*l{i - 1}"] * 10) + "]" for i in range(1, 6)]
    path = tmp_path / "fuzzed.yaml"
    path.write_text(_spec_text("").replace("  options: \n", "  options:\n" + "\n".join(lines) + "\n"))
    assert check_spec_or_error(path) is None  # 10^6 leaves from 400 bytes: 10 more bytes per level ×10 memory


def test_nan_duration_bounds_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "fuzzed.yaml"
    path.write_text(_spec_text("{}").replace("  options: {}\n", "  options: {}\n  max_seconds: .nan\n"))
    assert check_spec_or_error(path) is None
