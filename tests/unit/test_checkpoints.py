"""Checkpoint loading: weights-only, key checks that list every difference, both formats."""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest
import torch
from torch import nn

from evalbench.adapters.checkpoints import load_checkpoint, load_into, save_checkpoint
from evalbench.errors import EvalbenchError


def net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2))


def test_official_bare_state_dict_and_module_prefix(tmp_path: Path) -> None:
    src = net()
    torch.save({f"module.{k}": v for k, v in src.state_dict().items()}, tmp_path / "w.pth")
    dst = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2))
    assert load_into(dst, tmp_path / "w.pth", "toy") == {}
    x = torch.randn(5, 3)
    torch.testing.assert_close(dst(x), src(x))


def test_evalbench_format_roundtrip(tmp_path: Path) -> None:
    src = net()
    save_checkpoint(tmp_path / "e.pth", src, "toy", {"width": 4}, {"epochs": 1})
    state, meta = load_checkpoint(tmp_path / "e.pth")
    assert meta["family"] == "toy" and meta["options"] == {"width": 4} and set(state) == set(src.state_dict())
    with pytest.raises(EvalbenchError, match="family 'toy', not 'other'"):
        load_into(net(), tmp_path / "e.pth", "other")


def test_wrong_keys_are_all_listed(tmp_path: Path) -> None:
    state = net().state_dict()
    state["extra.weight"] = torch.zeros(1)
    del state["2.bias"]
    state["0.weight"] = torch.zeros(5, 3)
    torch.save(state, tmp_path / "bad.pth")
    with pytest.raises(EvalbenchError) as err:
        load_into(net(), tmp_path / "bad.pth", "toy")
    msg = str(err.value)
    assert "missing keys: 2.bias" in msg and "unexpected keys: extra.weight" in msg
    assert "0.weight (5, 3) (expected (4, 3))" in msg and str(tmp_path / "bad.pth") in msg


class Evil:
    def __reduce__(self):
        return (print, ("pwned",))


def test_unsafe_or_garbage_files_are_refused(tmp_path: Path) -> None:
    (tmp_path / "evil.pth").write_bytes(pickle.dumps({"w": Evil()}))
    (tmp_path / "junk.pth").write_bytes(b"not a checkpoint")
    torch.save([1, 2, 3], tmp_path / "list.pth")
    for name, pattern in (
        ("evil.pth", "weights-only"),
        ("junk.pth", "weights-only"),
        ("list.pth", "not a state dict"),
        ("missing.pth", "not found"),
    ):
        with pytest.raises(EvalbenchError, match=pattern):
            load_checkpoint(tmp_path / name)
