"""Stale cache (issue 14): each kind of change invalidates exactly the affected cache entries and records.

Two encoders (the built-in ``logmel`` and ``wts``, a one-file adapter defined
here whose output is scaled by a 4-number checkpoint file) are scored on two
tasks.  After each change the run is repeated; the cache's debug log says which
entries were written (computed) and which were hits, and the record files say
which records were rewritten.  Everything not affected must be reused: a record
still up to date is not touched and its embeddings are not even read (no hit);
an affected record reads its unaffected parts from the cache (hits).

Already proven elsewhere and not repeated here: a task ``version`` bump makes
the record stale (tests/integration/test_uptodate.py), an audio file edited in
place is re-embedded and scored again (tests/integration/test_foundation_defects.py),
an external adapter file edit recomputes its records
(tests/integration/test_external_adapter_cli.py), and a ``--checkpoint`` file
rewritten at the same path is a new encoder (tests/integration/test_checkpoint_flag.py).
"""

from __future__ import annotations

import logging
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from evalbench.cli import main
from tests.conftest import ENCODERS, Env

ADAPTER = '''
"""Per-frame RMS, mean, max and min, scaled by the 4 numbers of the checkpoint file."""
from dataclasses import dataclass
import numpy as np
import torch
from evalbench.adapters.base import Encoder, Frames


@dataclass(frozen=True)
class WtsOptions:
    frame: int = 400


class WtsEncoder(Encoder):
    VERSION = 1
    Options = WtsOptions
    sample_rate = 16000
    embed_dim = 4

    def __init__(self, weights, frame):
        super().__init__()
        self.register_buffer("weights", weights)
        self.frame, self.hop_seconds = frame, frame / 16000

    @classmethod
    def from_options(cls, options, checkpoint):
        return cls(torch.tensor(np.loadtxt(checkpoint), dtype=torch.float32), options.frame)

    def encode(self, waveforms, lengths):
        t = max(waveforms.shape[1] // self.frame, 1)
        x = torch.nn.functional.pad(waveforms, (0, self.frame))[:, : t * self.frame].reshape(len(waveforms), t, -1)
        stats = torch.stack([x.pow(2).mean(-1).sqrt(), x.mean(-1), x.amax(-1), x.amin(-1)], dim=-1)
        mask = torch.arange(t)[None, :] < (lengths // self.frame).clamp(min=1)[:, None]
        return Frames(stats * self.weights, mask)
'''
TASKS = ("synth_pitch", "synth_detect")
ENCS = ("logmel", "wts")


@pytest.fixture
def world(env: Env, tmp_path: Path) -> Env:
    """Private copies of the tiny specs and data (edited here) and an encoders folder with ``logmel`` and ``wts``."""
    shutil.copytree(env.tasks, tmp_path / "tasks")
    shutil.copytree(env.data, tmp_path / "data")
    encoders = tmp_path / "encoders"
    encoders.mkdir()
    shutil.copy(ENCODERS / "logmel.yaml", encoders)
    (encoders / "wts_adapter.py").write_text(ADAPTER)
    (encoders / "w.txt").write_text("1 1 1 1\n")
    (encoders / "wts.yaml").write_text(
        "name: wts\nadapter: ./wts_adapter.py:WtsEncoder\ndescription: weights-scaled frame statistics\n"
        "pooling: mean_max\ncheckpoint: {path: w.txt}\n"
    )
    return Env(tmp_path / "tasks", encoders, tmp_path / "data", env.cache, env.results)


class Observed:
    """What one run did: cache entries written and hit (``encoder/task/part``), records rewritten."""

    def __init__(self, written: set[str], hits: set[str], records: set[str]) -> None:
        self.written, self.hits, self.records = written, hits, records


def records(env: Env) -> dict[str, bytes]:
    return {str(p.relative_to(env.results)): p.read_bytes() for p in env.results.rglob("*.json")}


def run(env: Env, caplog: pytest.LogCaptureFixture, *extra: str) -> Observed:
    """`evalbench run` of both encoders on both tasks; what it computed, reused and rewrote."""
    before = records(env)
    caplog.clear()
    with caplog.at_level(logging.DEBUG, logger="evalbench.embed.cache"):
        args = ("run", "--encoder", ",".join(ENCS), "--tasks", ",".join(TASKS), "--seeds", "1", *extra)
        assert main(env.cli(*args)) == 0
    text = "\n".join(r.getMessage() for r in caplog.records if r.name == "evalbench.embed.cache")
    after = records(env)
    return Observed(
        set(re.findall(r"cache write (\S+):", text)),
        set(re.findall(r"cache hit (\S+):", text)),
        {k for k in after if before.get(k) != after[k]},
    )


def entries(base: Observed, encoder: str) -> set[str]:
    """The baseline's entries of one encoder."""
    return {e for e in base.written if e.startswith(f"{encoder}/")}


def score_records(names: set[str]) -> set[str]:
    return {n for n in names if n.endswith(".linear.json")}


@pytest.fixture
def base(world: Env, caplog: pytest.LogCaptureFixture) -> Observed:
    """The first run: every entry computed, four records written."""
    first = run(world, caplog)
    assert {e.split("/")[0] for e in first.written} == set(ENCS) and not first.hits
    assert score_records(first.records) == {f"{e}/{t}.linear.json" for e in ENCS for t in TASKS}
    return first


def test_replaced_checkpoint_invalidates_only_its_encoders_entries(world: Env, base: Observed, caplog) -> None:
    (world.encoders / "w.txt").write_text("2 1 0.5 1\n")  # same path, new content
    again = run(world, caplog)
    assert again.written == entries(base, "wts")
    assert again.hits == set()  # logmel's records are up to date: its embeddings are not even read
    assert score_records(again.records) == {f"wts/{t}.linear.json" for t in TASKS}


def test_adapter_code_version_change_invalidates_only_its_encoders_entries(world: Env, base: Observed, caplog) -> None:
    adapter = world.encoders / "wts_adapter.py"
    adapter.write_text(adapter.read_text().replace("VERSION = 1", "VERSION = 2"))
    again = run(world, caplog)
    assert again.written == entries(base, "wts")
    assert again.hits == set()  # logmel's records are up to date: its embeddings are not even read
    assert score_records(again.records) == {f"wts/{t}.linear.json" for t in TASKS}


def test_task_spec_edit_changing_its_data_invalidates_only_that_tasks_entries(
    world: Env, base: Observed, caplog
) -> None:
    spec = world.tasks / "synth_pitch.yaml"
    spec.write_text(spec.read_text() + "audio:\n  clip_seconds: 0.5\n")  # shorter clips: different embeddings
    again = run(world, caplog)
    assert again.written == {e for e in base.written if "/synth_pitch/" in e}
    assert again.hits == set()  # synth_detect's records are up to date: its embeddings are not even read
    assert score_records(again.records) == {f"{e}/synth_pitch.linear.json" for e in ENCS}


def test_audio_changed_in_place_invalidates_only_the_parts_holding_it(world: Env, base: Observed, caplog) -> None:
    wav = sorted((world.data / "synth_detect").rglob("*.wav"))[0]
    audio, rate = sf.read(wav, dtype="float32")
    sf.write(wav, np.ascontiguousarray(audio[::-1]), rate, subtype="FLOAT")  # same length, new content
    again = run(world, caplog)
    parts = {e.split("/")[2] for e in again.written}
    assert len(parts) == 1  # one clip lives in one part
    part = parts.pop()
    assert again.written == {f"{e}/synth_detect/{part}" for e in ENCS}
    # The task's other parts are reused (hits); the other task's records are up to date (not even read).
    assert again.hits == {e for e in base.written if "/synth_detect/" in e} - again.written
    assert score_records(again.records) == {f"{e}/synth_detect.linear.json" for e in ENCS}


def test_probe_settings_change_keeps_every_embedding_but_retrains_every_record(
    world: Env, base: Observed, caplog
) -> None:
    again = run(world, caplog, "--seeds", "2")
    assert again.written == set() and again.hits == base.written
    assert score_records(again.records) == {f"{e}/{t}.linear.json" for e in ENCS for t in TASKS}
    unchanged = run(world, caplog, "--seeds", "2")
    assert unchanged.written == set() and unchanged.records == set()
