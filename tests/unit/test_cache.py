"""Embedding cache: key coverage, hit/miss, atomicity."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from evalbench.data.prepare import open_task_data
from evalbench.embed import extract
from evalbench.embed.cache import EmbeddingCache
from evalbench.embed.extract import cache_payload, embed_task, load_encoder_model
from evalbench.specs.encoder import load_encoder
from evalbench.specs.task import load_task
from tests.conftest import ENCODERS

PAYLOAD = {"encoder": "abc", "task": "t", "part": "train"}


def test_store_then_load_roundtrip(tmp_path: Path) -> None:
    cache = EmbeddingCache(tmp_path)
    array = np.arange(12, dtype=np.float32).reshape(4, 3)
    cache.store("enc", "t", "train", PAYLOAD, array)
    loaded = cache.load("enc", "t", "train", PAYLOAD)
    np.testing.assert_array_equal(loaded, array)
    assert isinstance(loaded, np.memmap)
    assert cache.load("enc", "t", "train", {**PAYLOAD, "encoder": "abd"}) is None


def test_interrupted_writes_are_misses(tmp_path: Path) -> None:
    cache = EmbeddingCache(tmp_path)
    path = cache.store("enc", "t", "train", PAYLOAD, np.ones((5, 2), np.float32))
    manifest = path.with_suffix(".json")
    # 1. the array was written but the process died before the manifest
    manifest.unlink()
    assert cache.load("enc", "t", "train", PAYLOAD) is None
    # 2. a manifest over a truncated array (e.g. disk full) is not trusted
    cache.store("enc", "t", "train", PAYLOAD, np.ones((5, 2), np.float32))
    path.write_bytes(path.read_bytes()[:-8])
    assert cache.load("enc", "t", "train", PAYLOAD) is None
    # 3. a manifest for another key is not trusted
    cache.store("enc", "t", "train", PAYLOAD, np.ones((5, 2), np.float32))
    meta = json.loads(manifest.read_text())
    manifest.write_text(json.dumps({**meta, "key": "0" * 64}))
    assert cache.load("enc", "t", "train", PAYLOAD) is None
    # no temporary files are left behind by successful writes
    assert not list(tmp_path.rglob(".tmp-*"))


def test_failed_write_leaves_no_entry(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cache = EmbeddingCache(tmp_path)

    def boom(fh, array, allow_pickle):
        fh.write(b"partial")
        raise KeyboardInterrupt

    monkeypatch.setattr(np, "save", boom)
    with pytest.raises(KeyboardInterrupt):
        cache.store("enc", "t", "train", PAYLOAD, np.ones((5, 2), np.float32))
    monkeypatch.undo()
    assert cache.load("enc", "t", "train", PAYLOAD) is None
    assert not list(tmp_path.rglob("*.npy")) and not list(tmp_path.rglob(".tmp-*"))


@pytest.fixture
def pitch(tiny_tasks: Path, tiny_data: Path):
    return open_task_data(load_task("synth_pitch", tiny_tasks), tiny_data)


def test_key_covers_upstream_not_batch_size(pitch, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    enc = load_encoder_model(load_encoder("logmel", ENCODERS), torch.device("cpu"))
    cache = EmbeddingCache(tmp_path)
    x1, s1 = embed_task(enc, pitch, cache, batch_size=8)
    assert (s1.parts_cached, s1.parts_computed) == (0, 3)
    calls = []
    monkeypatch.setattr(extract, "embed_rows", lambda *a, **k: calls.append(1) or pytest.fail("cache miss"))
    x2, s2 = embed_task(enc, pitch, cache, batch_size=3)  # batch size is not part of the key
    assert (s2.parts_cached, s2.parts_computed) == (3, 0) and not calls
    np.testing.assert_array_equal(x1, x2)
    rows = pitch.parts()["train"]
    base = cache_payload(enc, pitch, "train", rows)
    changed_task = dataclasses.replace(pitch, task=dataclasses.replace(pitch.task, version=pitch.task.version + 1))
    assert EmbeddingCache.key(cache_payload(enc, changed_task, "train", rows)) != EmbeddingCache.key(base)
    enc.checkpoint_sha256 = "f" * 64  # a different weights file
    assert EmbeddingCache.key(cache_payload(enc, pitch, "train", rows)) != EmbeddingCache.key(base)


def test_embeddings_match_a_direct_computation(pitch, tmp_path: Path) -> None:
    enc = load_encoder_model(load_encoder("logmel", ENCODERS), torch.device("cpu"))
    x, _ = embed_task(enc, pitch, EmbeddingCache(tmp_path), batch_size=7)
    import soundfile as sf

    wav, _ = sf.read(pitch.path(5), dtype="float32")
    with torch.inference_mode():
        frames = enc.model.encode(torch.from_numpy(wav)[None], torch.tensor([len(wav)]))
    mean = frames.embeddings[0][frames.mask[0]].mean(0)
    np.testing.assert_allclose(x[5, :64], mean.numpy(), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("workers", [0, 1])
def test_a_corrupt_clip_stops_extraction_with_one_clear_line(
    tiny_tasks: Path, tiny_data: Path, tmp_path: Path, workers: int
) -> None:
    import shutil

    from evalbench.errors import AudioDecodeError

    data_root = tmp_path / "data"
    shutil.copytree(tiny_data / "synth_detect", data_root / "synth_detect")
    bad = data_root / "synth_detect" / "audio" / "detect_00003.wav"
    bad.write_bytes(bad.read_bytes()[:30])  # truncated inside the header
    data = open_task_data(load_task("synth_detect", tiny_tasks), data_root)
    enc = load_encoder_model(load_encoder("logmel", ENCODERS), torch.device("cpu"))
    with pytest.raises(AudioDecodeError) as err:
        embed_task(enc, data, EmbeddingCache(tmp_path / "cache"), batch_size=4, workers=workers)
    message = str(err.value)
    assert "\n" not in message and str(bad) in message and "evalbench data verify synth_detect" in message
    from evalbench.utils.locks import is_held

    locks = list((tmp_path / "cache").rglob("*.lock"))
    assert locks and not any(is_held(lock) for lock in locks)  # a failed part gives its entry lock back at once
