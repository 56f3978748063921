"""Protocol presets: ids, deviations, record files, and the up-to-date key's code version."""

from __future__ import annotations

from pathlib import Path

import pytest

from evalbench.errors import EvalbenchError
from evalbench.presets import get_preset, identity, probe_config, record_file
from evalbench.results.store import staleness_key


def test_the_default_preset_as_published_keeps_the_plain_id_and_file() -> None:
    preset = get_preset("evalbench")
    ident = identity(preset, "linear", probe_config(preset, "linear"))
    assert ident == {"protocol": "evalbench-linear-v3", "preset": "evalbench", "version": 3, "deviations": {}}
    assert record_file(Path("r"), "enc", "task", "linear", ident) == Path("r/enc/task.linear.json")
    assert probe_config(preset, "linear")["solver"] == "newton" and len(preset.seeds) == 5


def test_any_option_off_the_preset_gets_its_own_id_table_and_file() -> None:
    preset = get_preset("evalbench")
    a = identity(preset, "linear", probe_config(preset, "linear", {"l2_patience": 5}))
    b = identity(preset, "linear", probe_config(preset, "linear", {"l2_patience": 6}))
    c = identity(preset, "linear", probe_config(preset, "linear", {"solver": "newton"}))  # the preset's own value
    assert a["protocol"].startswith("evalbench-linear-v3+") and a["deviations"] == {"l2_patience": 5}
    assert a["protocol"] != b["protocol"] and c["protocol"] == "evalbench-linear-v3"
    name = record_file(Path("r"), "enc", "task", "linear", a).name
    assert name == f"task.linear.evalbench+{a['protocol'].split('+')[1]}.json"


def test_unknown_preset_or_option_is_a_clear_error() -> None:
    with pytest.raises(EvalbenchError, match="known: evalbench"):
        get_preset("evar2")
    with pytest.raises(EvalbenchError, match=r"unknown option.*lr_max"):
        probe_config(get_preset("evalbench"), "linear", {"lr_max": 1})


def test_a_record_from_another_code_version_is_not_up_to_date() -> None:
    rec = {"schema_version": 1, "evalbench_version": "0.2.0", "encoder": {}, "task": {}, "probe": {}, "seeds": [42]}
    assert staleness_key(rec) != staleness_key({**rec, "evalbench_version": "0.1.0"})
