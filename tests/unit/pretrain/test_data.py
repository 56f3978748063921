"""The pretraining data layer: corpora, contamination checks, deterministic crops and batches."""

from __future__ import annotations

import itertools
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from evalbench.data.prepare import open_task_data
from evalbench.errors import AudioDecodeError, DataError, EvalbenchError
from evalbench.pretrain.data import (
    CropDataset,
    EpochSampler,
    PretrainCorpus,
    check_disjoint,
    embedded_corpus,
    folder_corpus,
    make_loader,
    task_corpus,
)
from evalbench.specs.task import load_task
from tests.conftest import TINY_SIZES

SR = 16000
UNIT = 0.5  # seconds → 8000 samples
N_UNIT = 8000


def _write(path: Path, wav: np.ndarray, sr: int = SR, subtype: str = "FLOAT") -> None:
    """A WAV file; 32-bit float by default, so samples read back exactly."""
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, wav, sr, subtype=subtype, format="WAV")


def _ramp(n: int) -> np.ndarray:
    """Samples that encode their own index exactly in float32: ``i / 2**16``."""
    return np.arange(n, dtype=np.float32) / 2**16


def _index_of(sample: float | np.floating | torch.Tensor) -> int:
    """The source index a ramp sample encodes."""
    return round(float(sample) * 2**16)


def _corpus(root: Path, clips: dict[str, np.ndarray], sr: int = SR) -> PretrainCorpus:
    for name, wav in clips.items():
        _write(root / name, wav, sr)
    return folder_corpus(root)


# --- corpora -----------------------------------------------------------------------------------------
def test_folder_corpus_finds_nested_audio_sorted_and_skips_hidden(tmp_path: Path) -> None:
    tone = np.sin(np.linspace(0, 100, 1600)).astype(np.float32)
    for name in ("b/deep/x.wav", "a.FLAC", "b/c.ogg", "._a.wav", "b/.hidden.wav", ".cache/y.wav"):
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        fmt = {".wav": "WAV", ".flac": "FLAC", ".ogg": "OGG"}[path.suffix.lower()]
        sf.write(path, tone, SR, format=fmt, subtype="VORBIS" if fmt == "OGG" else "PCM_16")
    (tmp_path / "notes.txt").write_text("not audio")
    corpus = folder_corpus(tmp_path)
    assert corpus.files == ["a.FLAC", "b/c.ogg", "b/deep/x.wav"]
    assert corpus.root == tmp_path and len(corpus.content) == 3
    assert all(len(sha) == 64 for sha in corpus.content.values())
    assert corpus.description == f"folder {tmp_path} (3 audio files)"
    assert folder_corpus(tmp_path).fingerprint == corpus.fingerprint
    sf.write(tmp_path / "a.FLAC", tone * 0.5, SR, format="FLAC", subtype="PCM_16")
    assert folder_corpus(tmp_path).fingerprint != corpus.fingerprint


def test_folder_corpus_errors_name_the_folder(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=str(tmp_path / "absent")):
        folder_corpus(tmp_path / "absent")
    (tmp_path / "empty" / "sub").mkdir(parents=True)
    (tmp_path / "empty" / "._x.wav").write_bytes(b"resource fork")
    with pytest.raises(DataError, match=f"{tmp_path / 'empty'}: no audio files"):
        folder_corpus(tmp_path / "empty")


def test_task_corpus_fixed_split_is_the_train_split_only(tiny_tasks: Path, tiny_data: Path) -> None:
    task = load_task("synth_pitch", tiny_tasks)
    data = open_task_data(task, tiny_data)
    corpus = task_corpus(task, tiny_data)
    train = sorted(f for f, s in zip(data.files, data.split, strict=True) if s == "train")
    assert corpus.files == train and corpus.root == data.dataset.audio_root
    assert sorted(corpus.excluded) == sorted(f for f, s in zip(data.files, data.split, strict=True) if s != "train")
    assert corpus.content == {f: data.dataset.content[f] for f in train}
    assert "synth_pitch" in corpus.description and "train" in corpus.description
    with pytest.raises(EvalbenchError, match="--fold does not apply"):
        task_corpus(task, tiny_data, fold=1)


def test_task_corpus_k_fold_needs_a_fold_and_never_reads_it(tiny_tasks: Path, tiny_data: Path) -> None:
    task = load_task("synth_timbre", tiny_tasks)
    with pytest.raises(EvalbenchError, match=r"synth_timbre is k-fold: pass --fold K \(1\.\.5\)"):
        task_corpus(task, tiny_data)
    with pytest.raises(EvalbenchError, match=r"outside 1\.\.5"):
        task_corpus(task, tiny_data, fold=6)
    data = open_task_data(task, tiny_data)
    corpus = task_corpus(task, tiny_data, fold=2)
    fold2 = {f for f, k in zip(data.files, data.fold, strict=True) if k == 2}
    assert fold2 and not fold2 & set(corpus.files)
    assert set(corpus.files) | fold2 == set(data.files) and set(corpus.excluded) == fold2
    assert corpus.held_out == "fold 2" and "fold 2 held out" in corpus.description


def test_embedded_corpus_is_deterministic_and_generated_once(tmp_path: Path) -> None:
    a = embedded_corpus(tmp_path / "a", n_clips=40)
    b = embedded_corpus(tmp_path / "b", n_clips=40)
    assert a.content == b.content and a.fingerprint == b.fingerprint
    assert a.root == tmp_path / "a" / "pretrain-corpus" / "v1-40x1.0s-16000" and len(a.files) == 40
    assert len(set(a.content.values())) == 40  # no two clips alike
    info = sf.info(a.root / a.files[0])
    assert (info.samplerate, info.frames, info.subtype) == (SR, SR, "PCM_16")
    mtimes = {f: os.stat(a.root / f).st_mtime_ns for f in a.files}
    assert embedded_corpus(tmp_path / "a", n_clips=40).fingerprint == a.fingerprint
    assert {f: os.stat(a.root / f).st_mtime_ns for f in a.files} == mtimes  # complete: nothing rewritten
    (a.root / "corpus.json").unlink()  # as if interrupted: resumes, writing only what is absent
    (a.root / a.files[3]).unlink()
    again = embedded_corpus(tmp_path / "a", n_clips=40)
    assert again.content == a.content and (a.root / "corpus.json").is_file()
    assert os.stat(a.root / a.files[0]).st_mtime_ns == mtimes[a.files[0]]
    _write(a.root / a.files[5], np.zeros(SR, dtype=np.float32), subtype="PCM_16")  # damaged: regenerated
    assert embedded_corpus(tmp_path / "a", n_clips=40).content == a.content


def test_embedded_corpus_is_disjoint_from_the_synthetic_suite(
    tmp_path: Path, tiny_tasks: Path, tiny_data: Path
) -> None:
    corpus = embedded_corpus(tmp_path, n_clips=40)
    tasks_data = [open_task_data(load_task(name, tiny_tasks), tiny_data) for name in sorted(TINY_SIZES)]
    assert check_disjoint(corpus, tasks_data) == []
    # Positive control: a folder corpus holding one evaluation clip is caught.
    pitch = tasks_data[sorted(TINY_SIZES).index("synth_pitch")]
    mixed = tmp_path / "mixed"
    shutil.copytree(corpus.root, mixed, ignore=shutil.ignore_patterns("*.json"))
    shutil.copy(pitch.path(7), mixed / "leaked.wav")
    assert check_disjoint(folder_corpus(mixed), tasks_data) == ["leaked.wav"]


# --- crops -------------------------------------------------------------------------------------------
def test_short_clips_v1_pads_both_sides_v2_and_start_pad_the_end(tmp_path: Path) -> None:
    clip = 0.25 + _ramp(3001)  # odd padding: 4999 samples, 2499 left and 2500 right in v1
    corpus = _corpus(tmp_path, {"short.wav": clip})
    v1 = CropDataset(corpus, SR, UNIT, "v1", seed=0)[0, 0].numpy()
    assert v1.dtype == np.float32 and v1.shape == (N_UNIT,)
    left = (N_UNIT - 3001) // 2
    np.testing.assert_array_equal(v1[left : left + 3001], clip)
    assert not v1[:left].any() and not v1[left + 3001 :].any()
    for epoch in range(3):  # nothing to choose: the same for every epoch
        np.testing.assert_array_equal(CropDataset(corpus, SR, UNIT, "v1", seed=1)[epoch, 0].numpy(), v1)
    for mode in ("v2", "start"):
        out = CropDataset(corpus, SR, UNIT, mode, seed=0)[2, 0].numpy()
        np.testing.assert_array_equal(out[:3001], clip)
        assert not out[3001:].any()


def test_long_clip_crops_are_contiguous_windows_fixed_by_seed_epoch_and_index(tmp_path: Path) -> None:
    n = 3 * SR
    corpus = _corpus(tmp_path, {"a.wav": _ramp(n), "b.wav": _ramp(n)})
    starts = {}
    for mode in ("v1", "v2"):
        ds = CropDataset(corpus, SR, UNIT, mode, seed=5)
        for epoch in range(8):
            for index in range(2):
                out = ds[epoch, index].numpy()
                start = _index_of(out[0])
                np.testing.assert_array_equal(out, _ramp(n)[start : start + N_UNIT])
                np.testing.assert_array_equal(CropDataset(corpus, SR, UNIT, mode, seed=5)[epoch, index].numpy(), out)
                starts[mode, epoch, index] = start
        assert len({starts[mode, e, 0] for e in range(8)}) > 1  # epochs differ
        assert [starts[mode, e, 0] for e in range(8)] != [starts[mode, e, 1] for e in range(8)]  # files differ
    other = [_index_of(CropDataset(corpus, SR, UNIT, "v1", seed=6)[e, 0][0]) for e in range(8)]
    assert other != [starts["v1", e, 0] for e in range(8)]  # the seed matters
    assert CropDataset(corpus, SR, UNIT, "start", seed=5)[3, 1][0].item() == 0.0


def test_offset_ranges_follow_the_reference_code(tmp_path: Path) -> None:
    corpus = _corpus(tmp_path, {"a.wav": _ramp(N_UNIT + 1)})  # one sample of slack
    v1 = {_index_of(CropDataset(corpus, SR, UNIT, "v1", seed=0)[e, 0][0]) for e in range(32)}
    v2 = {_index_of(CropDataset(corpus, SR, UNIT, "v2", seed=0)[e, 0][0]) for e in range(32)}
    assert v1 == {0, 1} and v2 == {0}  # random.randint(0, slack) vs np.random.randint(slack)


def test_other_rates_are_resampled_whole_and_cached(tmp_path: Path) -> None:
    t = np.arange(44100) / 44100
    corpus = _corpus(tmp_path / "audio", {"hi.wav": (0.5 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)}, 44100)
    cache = tmp_path / "cache"
    cold = CropDataset(corpus, SR, UNIT, "v2", seed=0, audio_cache=cache)[1, 0]
    assert cold.shape == (N_UNIT,) and cold.dtype == torch.float32
    entries = list(cache.rglob("*.f32c"))
    assert len(entries) == 1 and entries[0].relative_to(cache).parts[0] == f"{SR}Hz"
    assert entries[0].stat().st_size == 4 * SR + 4  # the whole clip at the training rate, and its CRC-32
    os.utime(entries[0], ns=(1, 1))
    warm = CropDataset(corpus, SR, UNIT, "v2", seed=0, audio_cache=cache)[1, 0]
    torch.testing.assert_close(warm, cold, rtol=0, atol=0)
    assert len(list(cache.rglob("*.f32c"))) == 1 and entries[0].stat().st_mtime_ns == 1  # read, not rewritten


def test_decode_errors_name_the_file(tmp_path: Path) -> None:
    (tmp_path / "bad.wav").write_bytes(b"not a wav file at all")
    with pytest.raises(AudioDecodeError, match=str(tmp_path / "bad.wav")):
        CropDataset(folder_corpus(tmp_path), SR, UNIT, "v1", seed=0)[0, 0]


# --- batches -----------------------------------------------------------------------------------------
def test_every_epoch_is_a_permutation_and_resume_is_exact() -> None:
    sampler = EpochSampler(10, 3, seed=7, drop_last=False)
    assert sampler.steps_per_epoch == 4 and EpochSampler(10, 3, seed=7).steps_per_epoch == 3
    steps = list(itertools.islice(iter(sampler), 12))
    for epoch in range(3):
        keys = [k for batch in steps[4 * epoch : 4 * epoch + 4] for k in batch]
        assert {e for e, _ in keys} == {epoch} and sorted(i for _, i in keys) == list(range(10))
    assert [len(b) for b in steps[:4]] == [3, 3, 3, 1]
    orders = [[i for b in steps[4 * e : 4 * e + 4] for _, i in b] for e in range(3)]
    assert orders[0] != orders[1]
    dropped = EpochSampler(10, 3, seed=7)
    fresh = list(itertools.islice(iter(dropped), 20))
    assert all(len(b) == 3 for b in fresh)
    for k in (0, 1, 2, 3, 7, 13):
        assert list(itertools.islice(dropped.iter_from(k), 20 - k)) == fresh[k:]


def test_ranks_split_each_global_batch() -> None:
    single = list(itertools.islice(iter(EpochSampler(50, 8, seed=3)), 14))
    ranks = [list(itertools.islice(EpochSampler(50, 8, seed=3, rank=r, world_size=2).iter_from(0), 14)) for r in (0, 1)]
    for step, batch in enumerate(single):
        assert len(ranks[0][step]) == len(ranks[1][step]) == 4
        assert ranks[0][step] + ranks[1][step] == batch
    assert list(itertools.islice(EpochSampler(50, 8, 3, rank=1, world_size=2).iter_from(9), 5)) == ranks[1][9:14]
    with pytest.raises(ValueError, match="divide evenly over 3 ranks"):
        EpochSampler(50, 8, seed=3, rank=0, world_size=3)


def test_too_few_clips_for_one_batch() -> None:
    with pytest.raises(EvalbenchError, match="the corpus has 5 clips, fewer than one batch of 8; lower --batch-size"):
        EpochSampler(5, 8, seed=0)


def test_loader_batches_do_not_depend_on_workers(tmp_path: Path) -> None:
    corpus = _corpus(tmp_path, {f"{i}.wav": _ramp(SR // 4 + 1000 * i) for i in range(6)})
    dataset = CropDataset(corpus, SR, UNIT / 4, "v1", seed=11)
    sampler = EpochSampler(len(dataset), 4, seed=2)
    runs = {w: list(itertools.islice(make_loader(dataset, sampler, 3, workers=w), 4)) for w in (0, 1)}
    for a, b in zip(runs[0], runs[1], strict=True):
        assert a.shape == (4, N_UNIT // 4)
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    expected = [torch.stack([dataset[k] for k in keys]) for keys in itertools.islice(sampler.iter_from(3), 4)]
    for got, want in zip(runs[0], expected, strict=True):
        torch.testing.assert_close(got, want, rtol=0, atol=0)
