"""``evalbench run`` scoring evalbench encoders through the HEAR API (``evalbench.hear``) gives the direct scores.

Four encoders on the tiny ``synth_pitch``, one seed:

- ``logmel`` and ``logmel-via-hear``, a YAML with adapter ``hear``, module
  ``evalbench.hear``, ``embedding: scene`` and ``logmel.yaml`` as its weights
  file: the spec's own pooling (mean_std) through ``get_scene_embeddings``;
- ``logmel-mean`` (the log-mel frames, mean-pooled) and
  ``hear:evalbench.hear:<logmel-mean.yaml>``: the timestamp frames, mean-pooled
  by the ``hear`` adapter.

Each pair must get the same scores: the probes see the same embeddings.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import yaml

from evalbench.cli import main
from tests.conftest import ENCODERS, Env


def test_run_through_hear_export_equals_direct(env: Env, tmp_path: Path) -> None:
    encoders = tmp_path / "encoders"
    encoders.mkdir()
    shutil.copy(ENCODERS / "logmel.yaml", encoders / "logmel.yaml")
    logmel = yaml.safe_load((ENCODERS / "logmel.yaml").read_text())
    (encoders / "logmel-mean.yaml").write_text(yaml.safe_dump({**logmel, "name": "logmel-mean", "pooling": "mean"}))
    via = {
        "name": "logmel-via-hear",
        "adapter": "hear",
        "description": "logmel through evalbench.hear",
        "pooling": "mean",
        "options": {"module": "evalbench.hear", "embedding": "scene"},
        "checkpoint": {"path": "logmel.yaml"},
    }
    (encoders / "logmel-via-hear.yaml").write_text(yaml.safe_dump(via))
    env = dataclasses.replace(env, encoders=encoders)
    hear_name = f"hear:evalbench.hear:{encoders / 'logmel-mean.yaml'}"
    names = f"logmel,logmel-via-hear,logmel-mean,{hear_name}"
    assert main(env.cli("run", "--encoder", names, "--tasks", "synth_pitch", "--seeds", "1")) == 0

    def record(name: str) -> dict:
        return json.loads((env.results / name / "synth_pitch.linear.json").read_text())

    for direct, through in (("logmel", "logmel-via-hear"), ("logmel-mean", "hear-evalbench.hear@logmel-mean")):
        a, b = record(direct), record(through)
        assert b["encoder"]["adapter"] == "hear" and a["encoder"]["embedding_dim"] == b["encoder"]["embedding_dim"]
        assert a["scores"] == b["scores"], (direct, through)
    assert record("logmel")["encoder"]["embedding_dim"] == 128
