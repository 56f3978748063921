"""Precision is part of identity: TF32 off, autocast checked against fp32 and refused beyond tolerance, keys apart."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import torch

from evalbench.cli import main
from evalbench.data.prepare import open_task_data
from evalbench.embed import encoder as encoder_module
from evalbench.embed.cache import EmbeddingCache
from evalbench.embed.extract import embed_task, load_encoder_model, static_identity
from evalbench.errors import EvalbenchError
from evalbench.specs.encoder import load_encoder
from evalbench.specs.task import load_task
from evalbench.utils.precision import check_precision, compute_identity, deviation, set_matmul_policy
from tests.conftest import ENCODERS, Env

CPU = torch.device("cpu")


def test_float32_on_cpu_adds_nothing_to_identities_and_anything_else_does() -> None:
    spec = load_encoder("byola-random", ENCODERS)
    reference = static_identity(spec, None)
    assert static_identity(spec, None, compute_identity("cpu", "fp32")) == reference  # old cache keys stay valid
    bf16 = static_identity(spec, None, compute_identity("cpu", "bf16"))
    cuda = static_identity(spec, None, compute_identity("cuda", "fp32"))
    assert bf16["compute"] == {"device": "cpu", "precision": "bf16", "tf32": False}
    assert cuda["compute"]["device"] == "cuda" and len({str(reference), str(bf16), str(cuda)}) == 3
    fp32_enc = load_encoder_model(spec, CPU)
    bf16_enc = load_encoder_model(spec, CPU, precision="bf16")
    assert fp32_enc.fingerprint != bf16_enc.fingerprint  # so cache entries of the two never mix


def test_fp16_off_cuda_and_unknown_precisions_are_refused() -> None:
    with pytest.raises(EvalbenchError, match="needs a CUDA device"):
        check_precision("fp16", CPU)
    with pytest.raises(EvalbenchError, match="not one of fp32, bf16, fp16"):
        check_precision("int8", CPU)
    check_precision("bf16", CPU)


def test_tf32_is_off_unless_asked_for() -> None:
    try:
        assert set_matmul_policy(False) == {"tf32": False, "float32_matmul_precision": "highest"}
        assert not torch.backends.cuda.matmul.allow_tf32 and not torch.backends.cudnn.allow_tf32
        assert set_matmul_policy(True)["tf32"] and torch.backends.cudnn.allow_tf32
    finally:
        set_matmul_policy(False)


def test_deviation_is_the_largest_per_row_relative_distance() -> None:
    ref = torch.tensor([[3.0, 4.0], [1.0, 0.0]])
    other = torch.tensor([[3.0, 4.5], [1.0, 0.0]])
    assert deviation(ref, other) == pytest.approx(0.1)


def test_bf16_extraction_is_checked_against_fp32_and_refused_beyond_tolerance(
    tiny_tasks: Path, tiny_data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = open_task_data(load_task("synth_detect", tiny_tasks), tiny_data)
    spec = load_encoder("byola-random", ENCODERS)
    monkeypatch.setattr(encoder_module, "TOLERANCE", 1.0)  # accept: the deviation is measured and kept
    enc = load_encoder_model(spec, CPU, precision="bf16")
    x, _ = embed_task(enc, data, EmbeddingCache(tmp_path / "a"), batch_size=8)
    moved = enc.deviations["synth_detect"]
    assert 0.0 < moved < 1.0  # bf16 really ran, and stayed close
    ref, _ = embed_task(load_encoder_model(spec, CPU), data, EmbeddingCache(tmp_path / "a"), batch_size=8)
    assert deviation(torch.as_tensor(ref), torch.as_tensor(x)) > 0.0  # a separate entry, not the fp32 one reused

    monkeypatch.setattr(encoder_module, "TOLERANCE", moved / 2)  # forced: the same deviation is now too much
    enc = load_encoder_model(spec, CPU, precision="bf16")
    with pytest.raises(EvalbenchError, match=r"--precision bf16 moves encoder 'byola-random' embeddings on task"):
        embed_task(enc, data, EmbeddingCache(tmp_path / "b"), batch_size=8)
    assert not list((tmp_path / "b").rglob("*.npy"))  # nothing cached


def test_run_records_the_computation_and_profile_prints_the_stages(env: Env, capsys: pytest.CaptureFixture) -> None:
    assert main(env.cli("run", "--encoder", "logmel", "--tasks", "synth_detect", "--seeds", "1", "--profile")) == 0
    out = capsys.readouterr().out
    assert "decode s" in out and "cache_write s" in out
    assert re.search(r"^logmel +synth_detect +written +", out, re.M)
    record = json.loads((env.results / "logmel" / "synth_detect.linear.json").read_text())
    assert record["compute"] == {
        "device": "cpu",
        "precision": "fp32",
        "tf32": False,
        "check_deviation": None,
        "processes": 1,
    }
    stages = record["timings"]["stages_s"]
    assert {"decode", "encode", "pool", "cache_write", "probe"} <= set(stages) and all(v >= 0 for v in stages.values())
