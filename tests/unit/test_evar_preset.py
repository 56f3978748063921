"""The `evar` protocol preset follows the reference harness (docs/protocol.md §2) on hand-built cases.

Validation draw (random, ungrouped 10 %, redrawn until every class is present), crop by role (random start
for training and validation clips, drawn once; start for test clips), pooling over every output frame, the
published learning rates, the reference's loss scale, and its record and table.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from evalbench.adapters.base import Frames
from evalbench.cli import main
from evalbench.data.audio import crop_start, read_audio
from evalbench.data.prepare import open_task_data
from evalbench.data.splits import random_holdout, rotations
from evalbench.data.task_data import TaskData
from evalbench.embed.cache import EmbeddingCache
from evalbench.embed.extract import ClipDataset, embed_views, load_encoder_model
from evalbench.paths import encoder_dirs
from evalbench.presets import get_preset, identity, probe_config, record_name
from evalbench.probes.linear import LinearProbe
from evalbench.registry import POOLINGS
from evalbench.specs.encoder import load_encoder
from evalbench.specs.task import load_task
from tests.conftest import Env

EVAR = get_preset("evar")


def _with_unit(data: TaskData, seconds: float) -> TaskData:
    """The same task with another unit (clips are 1 s: 0.5 s crops them, 1.5 s pads them)."""
    audio = dataclasses.replace(data.task.audio, clip_seconds=seconds)
    return dataclasses.replace(data, task=dataclasses.replace(data.task, audio=audio))


def test_the_random_draw_redraws_until_a_rare_class_is_present() -> None:
    y = np.zeros(100, dtype=int)
    y[:50], y[7] = 1, 2  # class 2 has one clip: a plain 10 % draw holds it one time in ten
    for seed in range(5):
        mask = random_holdout(y, 0.1, np.random.default_rng(seed))
        assert mask.sum() == 10 and mask[7]
    multi = np.zeros((100, 3), dtype=np.float32)
    multi[:, 0], multi[3, 2], multi[:40, 1] = 1, 1, 1
    assert random_holdout(multi, 0.1, np.random.default_rng(0))[3]


def test_evar_rotations_are_ungrouped_ten_percent_of_the_training_folds(tiny_tasks: Path, tiny_data: Path) -> None:
    data = open_task_data(load_task("synth_timbre", tiny_tasks), tiny_data)
    straddling = 0
    for rot in rotations(data, 42, "random"):
        pool = np.concatenate([rot.train, rot.valid])
        assert len(rot.valid) == round(0.1 * len(pool)) and rot.fold not in set(data.fold[pool])
        assert set(data.y[rot.valid]) == set(data.y[pool])  # every class of the pool validates
        straddling += len(set(data.groups[rot.train]) & set(data.groups[rot.valid]))
    assert straddling > 0  # takes of one source recording on both sides: the leakage our default removes
    again = [r.valid_sha256(data.files) for r in rotations(data, 42, "random")]
    assert again == [r.valid_sha256(data.files) for r in rotations(data, 42, "random")]
    assert again != [r.valid_sha256(data.files) for r in rotations(data, 43, "random")]
    assert again != [r.valid_sha256(data.files) for r in rotations(data, 42)]


def test_training_clips_are_cropped_at_random_and_test_clips_from_the_start(
    tiny_tasks: Path, tiny_data: Path, tmp_path: Path
) -> None:
    data = _with_unit(open_task_data(load_task("synth_timbre", tiny_tasks), tiny_data), 0.5)
    rows = np.arange(6)
    for policy in ("random", "start"):
        loaded = ClipDataset(data, rows, 16000, tmp_path / "audio", crop=policy)
        for i, row in enumerate(rows):
            wav, _ = read_audio(data.path(int(row)))
            start = crop_start(len(wav), 8000, policy, data.files[row], data.task.audio.crop_seed)
            np.testing.assert_allclose(loaded[i][0].numpy(), wav[start : start + 8000], atol=1e-6)
    starts = [crop_start(16000, 8000, "random", data.files[r], 0) for r in rows]
    assert len(set(starts)) > 1 and all(0 <= s <= 8000 for s in starts)  # drawn per clip, once (no seed input)

    enc = load_encoder_model(load_encoder("logmel", encoder_dirs(None)), torch.device("cpu"))
    cache = EmbeddingCache(tmp_path / "cache")
    x, x_test, stats = embed_views(enc, data, cache, 16, 0, EVAR.embedding)
    assert x_test is not x and stats.parts_computed == 2 * 5  # k-fold: every fold as training and as test material
    assert not np.allclose(x, x_test)
    plain, plain_test, _ = embed_views(enc, data, cache, 16, 0)
    assert plain_test is plain  # the default recipe needs one array
    fixed = _with_unit(open_task_data(load_task("synth_pitch", tiny_tasks), tiny_data), 0.5)
    y, y_test, stats = embed_views(enc, fixed, cache, 16, 0, EVAR.embedding)
    assert y_test is y and stats.parts_computed == 3  # a fixed split: each part has one role


def test_every_output_frame_is_pooled_padding_included(tiny_tasks: Path, tiny_data: Path, tmp_path: Path) -> None:
    data = _with_unit(open_task_data(load_task("synth_pitch", tiny_tasks), tiny_data), 1.5)  # 0.5 s of padding
    enc = load_encoder_model(load_encoder("logmel", encoder_dirs(None)), torch.device("cpu"))
    x, _, _ = embed_views(enc, data, EmbeddingCache(tmp_path), 16, 0, EVAR.embedding)
    masked, _, _ = embed_views(enc, data, EmbeddingCache(tmp_path), 16, 0)
    rows = np.arange(4)
    batch = [ClipDataset(data, rows, 16000, tmp_path / "audio")[i] for i in range(4)]
    wav, lengths = torch.stack([b[0] for b in batch]), torch.tensor([b[1] for b in batch])
    with torch.inference_mode():
        frames = enc.model.encode(wav, lengths)
        pool = POOLINGS.get(enc.spec.pooling)
        every = pool(Frames(frames.embeddings, torch.ones_like(frames.mask))).numpy()
        valid = pool(frames).numpy()
    assert not frames.mask.all()  # the case has padded frames
    np.testing.assert_allclose(x[rows], every, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(masked[rows], valid, rtol=1e-5, atol=1e-5)
    assert np.abs(every - valid).max() > 1e-2


@pytest.mark.parametrize(
    ("encoder", "task", "lr"),
    [("logmel", "esc50", 3e-4), ("byola", "esc50", 1e-3), ("byola", "us8k", 3e-5), ("byola", "vc1", 4e-5),
     ("byola", "synth_pitch", 3e-4), ("m2d", "gtzan", 3e-5)],
)  # fmt: skip
def test_the_learning_rate_is_the_published_one(encoder: str, task: str, lr: float) -> None:
    config = probe_config(EVAR, "linear", encoder=encoder, task=task)
    assert config["lrs"] == [lr] and config["solver"] == "adam" and config["loss_scale"] == "per_class"
    budget = (config["max_epochs"], config["patience"], config["batch_size"], config["weight_decay"])
    assert budget == (200, 20, 200, 1e-8)
    ident = identity(EVAR, "linear", config, encoder, task)
    assert ident["protocol"] == "evar-linear-v1" and ident["deviations"] == {}
    assert record_name(task, "linear", ident) == f"{task}.linear.evar.json"
    assert EVAR.seeds == (42, 43, 44)


def test_the_reference_loss_is_cross_entropy_over_the_class_count() -> None:
    logits, y = torch.randn(1, 8, 5), torch.randint(0, 5, (8,))
    mean = LinearProbe(5, loss_scale="mean")._grad_logits(logits.clone(), y)
    per_class = LinearProbe(5, loss_scale="per_class")._grad_logits(logits.clone(), y)
    torch.testing.assert_close(per_class, mean / 5)
    z = logits[0].clone().requires_grad_(True)
    (-(torch.nn.functional.one_hot(y, 5) * torch.log_softmax(z, -1)).mean()).backward()  # the reference's loss
    torch.testing.assert_close(per_class[0], z.grad)


def test_run_with_the_evar_protocol_writes_its_own_record_and_table(env: Env) -> None:
    args = ["--encoder", "logmel", "--tasks", "synth_timbre,synth_pitch", "--protocol", "evar"]
    assert main(env.cli("run", *args)) == 0
    rec = json.loads((env.results / "logmel" / "synth_timbre.linear.evar.json").read_text())
    assert rec["probe"]["protocol"] == "evar-linear-v1" and rec["seeds"] == [42, 43, 44]
    assert rec["probe"]["config"]["lrs"] == [3e-4] and rec["probe"]["data"]["validation"] == "random"
    assert rec["probe"]["data"]["embedding"] == {
        "crop": {"train": "random", "valid": "random", "test": "start"},
        "mask_padding": False,
    }
    assert all(r["chosen"]["lr"] == 3e-4 and 1 <= r["chosen"]["epoch"] <= 200 for r in rec["runs"])
    assert main(env.cli("run", "--encoder", "logmel", "--tasks", "synth_pitch")) == 0
    assert main(["leaderboard", "--results-dir", str(env.results)]) == 0
    board = (env.results / "leaderboard.md").read_text()
    assert "evar-linear-v1" in board and "evalbench-linear-v3" in board  # one table per protocol
