"""Safetensors checkpoints: written by ``pretrain --export-format safetensors``, read without pickle (issue 14).

The ``.safetensors`` file holds the same tensors as ``encoder.pt`` and the same
evalbench metadata (JSON strings in its header), so weights are equal exactly;
embeddings computed from the two files take the same path through the same
network, compared with ``EMB_RTOL``.  A truncated or damaged file is refused
with a message naming it.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from safetensors.torch import save_file

from evalbench.adapters.checkpoints import KeyMismatch, load_into, read_checkpoint, save_checkpoint
from evalbench.cli import main
from evalbench.errors import EvalbenchError
from evalbench.utils.hashing import sha256_file
from tests.conftest import Env
from tests.integration.pretrain_helpers import pretrain

EMB_RTOL = 1e-6  # the same network on the same audio; only the file the weights came from differs


class Net(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = torch.nn.Conv1d(2, 3, 5)
        self.bn = torch.nn.BatchNorm1d(3)  # a buffer of int64 (num_batches_tracked) and float running stats
        self.fc = torch.nn.Linear(3, 4)


OPTIONS = {"frontend": {"n_mels": 64, "hop_length": 160}, "hidden": [32, 16], "name": "tiny"}
META = {"method": "byola", "steps": 7, "final_loss": 0.25, "data": {"fingerprint": "abc"}}


def test_round_trip_keeps_tensors_exactly_and_the_metadata(tmp_path: Path) -> None:
    torch.manual_seed(0)
    net = Net()
    net.bn.running_mean.uniform_()
    net.fc.weight.data = net.fc.weight.data.t().contiguous().t()  # a non-contiguous parameter
    save_checkpoint(tmp_path / "w.pt", net, "byola", OPTIONS, META)
    save_checkpoint(tmp_path / "w.safetensors", net, "byola", OPTIONS, META)
    pt_state, pt_meta = read_checkpoint(tmp_path / "w.pt")
    st_state, st_meta = read_checkpoint(tmp_path / "w.safetensors")
    assert st_meta == pt_meta == {"format": "evalbench-checkpoint", "version": 1, "family": "byola",
                                  "options": OPTIONS, "meta": META}  # fmt: skip
    assert st_state.keys() == pt_state.keys() == net.state_dict().keys()
    for k, v in net.state_dict().items():
        assert st_state[k].dtype == v.dtype and torch.equal(st_state[k], v), k
    other = Net()
    assert load_into(other, tmp_path / "w.safetensors", "byola", options=OPTIONS)["meta"] == META
    assert all(torch.equal(a, b) for a, b in zip(other.state_dict().values(), net.state_dict().values(), strict=True))


def test_keys_and_family_are_checked_as_for_torch_files(tmp_path: Path) -> None:
    save_checkpoint(tmp_path / "w.safetensors", Net(), "byola", OPTIONS, META)
    with pytest.raises(EvalbenchError, match="family 'byola', not 'clmr'"):
        load_into(Net(), tmp_path / "w.safetensors", "clmr")
    wrong = Net()
    wrong.fc = torch.nn.Linear(3, 5)
    with pytest.raises(KeyMismatch) as exc:
        load_into(wrong, tmp_path / "w.safetensors", "byola")
    assert exc.value.shapes == ["fc.bias (4,) (expected (5,))", "fc.weight (4, 3) (expected (5, 3))"]
    with pytest.raises(EvalbenchError, match=r"hop_length: checkpoint 160, encoder 320"):
        load_into(Net(), tmp_path / "w.safetensors", "byola", options={**OPTIONS, "frontend": {"hop_length": 320}})


def test_a_file_from_another_tool_reads_as_a_bare_state_dict(tmp_path: Path) -> None:
    net = Net()
    save_file({k: v.contiguous() for k, v in net.state_dict().items()}, tmp_path / "w.safetensors", {"x": "y"})
    state, meta = read_checkpoint(tmp_path / "w.safetensors")
    assert meta == {} and all(torch.equal(state[k], v) for k, v in net.state_dict().items())


@pytest.mark.parametrize("damage", ["truncated", "flipped header", "not safetensors", "empty", "bad metadata"])
def test_a_damaged_file_is_refused_naming_it(tmp_path: Path, damage: str) -> None:
    path = tmp_path / "w.safetensors"
    save_checkpoint(path, Net(), "byola", OPTIONS, META)
    data = path.read_bytes()
    if damage == "truncated":
        path.write_bytes(data[: len(data) - 7])
    elif damage == "flipped header":
        path.write_bytes(data[:10] + bytes([data[10] ^ 0xFF]) + data[11:])
    elif damage == "not safetensors":
        path.write_bytes(b"PK\x03\x04 this is a zip, not safetensors" * 4)
    elif damage == "empty":
        path.write_bytes(b"")
    else:  # valid safetensors whose evalbench field is not JSON
        save_file({"w": torch.zeros(2)}, path, {"format": "evalbench-checkpoint", "version": "1", "family": "{"})
    with pytest.raises(EvalbenchError) as exc:
        read_checkpoint(path)
    message = str(exc.value)
    assert message.startswith(f"{path}: not a readable safetensors checkpoint (")
    assert "truncated or damaged" in message and "\n" not in message


def embeddings(env: Env, encoder: str, out: Path) -> dict[str, np.ndarray]:
    args = ["embed", "--encoder", encoder, "--tasks", "synth_detect", "--out", str(out), "--tasks-dir", str(env.tasks)]
    args += ["--encoders-dir", str(env.encoders), "--data-root", str(env.data), "--cache-dir", str(env.cache)]
    assert main(args) == 0
    with np.load(out / "synth_detect.npz") as npz:
        return {k: npz[k] for k in npz.files}


def test_pretrain_exports_safetensors_that_run_scores_like_the_pt(
    penv: Env, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    clips = str(tmp_path / "clips")
    assert pretrain(penv, "--data", clips, "--steps", "2", "--name", "st", "--export-format", "safetensors") == 0
    folder = penv.encoders / "checkpoints" / "pretrain" / "st"
    assert {"encoder.pt", "encoder.safetensors", "init.pt", "init.safetensors"} <= {p.name for p in folder.iterdir()}
    for name, weights in (("st", "encoder"), ("st-init", "init")):
        spec = yaml.safe_load((penv.encoders / f"{name}.yaml").read_text())
        path = (penv.encoders / spec["checkpoint"]["path"]).resolve()
        assert path == (folder / f"{weights}.safetensors").resolve()
        assert spec["checkpoint"]["sha256"] == sha256_file(path)
        pt, st = read_checkpoint(folder / f"{weights}.pt"), read_checkpoint(path)
        assert st[1] == pt[1] and st[0].keys() == pt[0].keys()
        assert all(torch.equal(st[0][k], pt[0][k]) for k in pt[0])
    # The same encoder registered on the .pt file: a copy of the YAML pointing at encoder.pt.
    spec = yaml.safe_load((penv.encoders / "st.yaml").read_text())
    spec["name"] = "st-pt"
    spec["checkpoint"] = {**spec["checkpoint"], "path": str(folder / "encoder.pt"),
                          "sha256": sha256_file(folder / "encoder.pt")}  # fmt: skip
    (penv.encoders / "st-pt.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    from_st, from_pt = embeddings(penv, "st", tmp_path / "e-st"), embeddings(penv, "st-pt", tmp_path / "e-pt")
    assert from_st.keys() == from_pt.keys() and "embeddings" in from_st
    for k in from_pt:
        if from_pt[k].dtype.kind == "f":
            np.testing.assert_allclose(from_st[k], from_pt[k], rtol=EMB_RTOL, atol=0)
        else:
            np.testing.assert_array_equal(from_st[k], from_pt[k])
    capsys.readouterr()
    assert main(penv.cli("run", "--encoder", "st,st-pt", "--tasks", "synth_detect", "--seeds", "1")) == 0
    records = {n: json.loads((penv.results / n / "synth_detect.linear.json").read_text()) for n in ("st", "st-pt")}
    for metric, value in records["st-pt"]["scores"]["test"].items():
        assert records["st"]["scores"]["test"][metric]["mean"] == pytest.approx(value["mean"], rel=1e-9, abs=1e-12)
    # Exported again as pt (a finished run re-exports): the YAML registers encoder.pt, no stale safetensors stays.
    assert pretrain(penv, "--data", clips, "--steps", "2", "--name", "st") == 0
    assert not (folder / "encoder.safetensors").exists() and not (folder / "init.safetensors").exists()
    spec = yaml.safe_load((penv.encoders / "st.yaml").read_text())
    assert (penv.encoders / spec["checkpoint"]["path"]).resolve() == (folder / "encoder.pt").resolve()


def test_a_truncated_registered_safetensors_stops_run_with_one_line(
    penv: Env, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    clips = str(tmp_path / "clips")
    assert pretrain(penv, "--data", clips, "--steps", "1", "--name", "st", "--export-format", "safetensors") == 0
    path = penv.encoders / "checkpoints" / "pretrain" / "st" / "encoder.safetensors"
    path.write_bytes(path.read_bytes()[:-100])
    spec_path = penv.encoders / "st.yaml"
    spec = yaml.safe_load(spec_path.read_text())
    spec["checkpoint"]["sha256"] = sha256_file(path)  # the hash matches: only the format check stands
    spec_path.write_text(yaml.safe_dump(spec, sort_keys=False))
    capsys.readouterr()
    assert main(penv.cli("run", "--encoder", "st", "--tasks", "synth_detect", "--seeds", "1")) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert f"{path}: not a readable safetensors checkpoint" in err and "truncated or damaged" in err
    assert not list(penv.results.rglob("*.json"))
