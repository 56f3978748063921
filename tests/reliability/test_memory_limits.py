"""Resource limits, memory side: long files in bounded memory, embeddings larger than the memory allowed.

- A long file is checked block by block (:func:`~evalbench.data.audio.scan`) and only its crop is read
  (:func:`~evalbench.data.audio.read_crop`); both give what decoding the whole file gives, and an hour-long
  file goes through ``data verify`` and ``run`` with peak RSS growth far below its 318 MB of decoded float32.
- Embeddings larger than the private memory allowed (``RLIMIT_DATA``, which counts anonymous and private
  writable mappings but not shared file mappings; ``RLIMIT_RSS`` is ignored by Linux and ``RLIMIT_AS`` counts
  file mappings and torch's reserved address space) are extracted into memory-mapped scratch files, cached,
  standardised block by block and scored block by block; the converged linear probe's training and validation
  rows go to scratch files and are read block by block (:mod:`evalbench.probes.design`); a probe that runs out
  of memory anyway (Adam, MLP, kNN hold their rows in RAM) fails with one clear error.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from evalbench.cli import main
from evalbench.data import audio
from evalbench.data.audio import AudioStats, Resampler, decode, load_clip, read_crop, scan
from evalbench.data.verify import check_file
from evalbench.embed.standardize import Standardizer
from evalbench.utils.memory import all_finite, row_blocks, scratch_array
from tests.data.helpers import ENCODERS

ROOT = Path(__file__).resolve().parents[2]
POLICIES = ["start", "center", "random"]


def _signal(start: int, n: int, sr: int, channels: int) -> np.ndarray:
    """Deterministic ``(n, channels)`` float32 samples ``start .. start + n`` of a tone plus a slow sweep.

    A function of the sample index, so a file can be written block by block and any window checked exactly.
    """
    t = (start + np.arange(n)) / sr
    left = 0.5 * np.sin(2 * np.pi * 440.0 * t) + 0.3 * np.sin(2 * np.pi * 0.01 * t * t)
    cols = [left] + [0.7 * np.cos(2 * np.pi * (220.0 * (c + 1)) * t) for c in range(1, channels)]
    return np.stack(cols, axis=1).astype(np.float32)


def _write(path: Path, seconds: float, sr: int, channels: int = 1, subtype: str = "PCM_16", block: int = 1 << 20):
    """Write ``seconds`` of :func:`_signal` block by block (bounded memory, whatever the length)."""
    total = round(seconds * sr)
    fmt = {"wav": "WAV", "flac": "FLAC", "mp3": "MP3", "ogg": "OGG"}[path.suffix[1:]]
    with sf.SoundFile(path, "w", sr, channels, subtype=subtype, format=fmt) as f:
        for start in range(0, total, block):
            f.write(_signal(start, min(block, total - start), sr, channels))
    return path


# --- the chunked path equals the whole-file path ---------------------------------------------------------------

FILES = [  # (suffix, subtype, rate, channels)
    ("wav", "PCM_16", 16000, 1),
    ("wav", "FLOAT", 44100, 2),
    ("flac", "PCM_24", 44100, 1),
    ("ogg", "VORBIS", 48000, 2),
    ("mp3", "MPEG_LAYER_III", 44100, 1),  # decoded whole either way (libsndfile's MPEG seek is not sample-exact)
]


@pytest.mark.parametrize(("suffix", "subtype", "sr", "channels"), FILES, ids=[f"{f[0]}-{f[2]}-{f[3]}ch" for f in FILES])
def test_block_scan_and_crop_equal_the_whole_file(tmp_path: Path, suffix, subtype, sr, channels) -> None:
    """60 s files: block scan == whole-file statistics; windowed crop == whole decode then crop, sample for sample."""
    fmt = {"wav": "WAV", "flac": "FLAC", "mp3": "MP3", "ogg": "OGG"}[suffix]
    if fmt not in sf.available_formats() or subtype not in sf.available_subtypes(fmt):
        pytest.skip(f"this libsndfile cannot write {fmt}/{subtype}")
    block = 4096 if fmt == "OGG" else 1 << 20  # libsndfile 1.2.2's Vorbis encoder crashed on one 60 s write
    path = _write(tmp_path / f"a.{suffix}", 60.0, sr, channels, subtype, block)
    whole, rate = decode(path)
    assert rate == sr and whole.shape[1] == channels and abs(len(whole) - 60 * sr) <= 2 * 1152
    # A block size that does not divide the length: the last block is partial.  Max and counts are exact.
    assert scan(path, block_frames=4099) == AudioStats.of(whole, sr)
    assert scan(path).frames == len(whole)
    for policy in POLICIES:
        for seconds in (7.3, 59.999, 75.0):  # a crop, nearly the whole file, and longer than the file
            chunked, r1 = read_crop(path, "k.wav", seconds, policy, 3, long_values=0, block_frames=4099)
            direct, r2 = read_crop(path, "k.wav", seconds, policy, 3, long_values=1 << 40)
            assert r1 == r2 == sr and len(direct) == min(len(whole), round(seconds * sr))
            np.testing.assert_array_equal(chunked, direct)  # the same decoded samples, not recomputed: exact


def test_block_scan_finds_what_the_whole_decode_finds(tmp_path: Path) -> None:
    """NaN, implausible peaks and silence in one late block are reported exactly as a whole decode reports them."""
    sr, n = 8000, 60 * 8000
    x = _signal(0, n, sr, 2)
    cases = {"nan.wav": (50_001, np.nan), "huge.wav": (470_000, 3e9), "silent.wav": (None, 0.0)}
    for name, (at, value) in cases.items():
        y = np.zeros_like(x) if at is None else x.copy()
        if at is not None:
            y[at, 1] = value
        sf.write(tmp_path / name, y, sr, subtype="FLOAT")
        got, want = scan(tmp_path / name, block_frames=1000), AudioStats.of(*decode(tmp_path / name))
        assert got == want
    assert scan(tmp_path / "nan.wav", 1000).nonfinite == 1
    assert scan(tmp_path / "huge.wav", 1000).peak == pytest.approx(3e9)
    assert not scan(tmp_path / "silent.wav", 1000).nonzero
    kinds = {name: check_file(tmp_path / name, 0.0, None).kind for name in cases}
    assert kinds == {"nan.wav": "nonfinite", "huge.wav": "implausible", "silent.wav": "silent"}
    with pytest.raises(audio.AudioDecodeError, match=r"nonfinite audio \(1 NaN"):
        read_crop(tmp_path / "nan.wav", "nan.wav", 1.0, "start", 0, long_values=0, block_frames=1000)


@pytest.mark.parametrize("policy", POLICIES)
@pytest.mark.parametrize("target", [16000, 44100])
def test_load_clip_chunked_equals_whole_with_and_without_resampling(tmp_path, monkeypatch, policy, target) -> None:
    """``run``'s decode (load_clip) with every file treated as long == with every file decoded whole.

    44.1 → 16 kHz resamples the native-rate crop both ways (the resampler sees the same samples, so the values
    agree to float32 rounding at most: atol 1e-5 stated; measured identical); 44.1 → 44.1 kHz is a plain read.
    """
    path = _write(tmp_path / "s.wav", 60.0, 44100, 2, "PCM_24")
    monkeypatch.setattr(audio, "LONG_VALUES", 1 << 40)
    whole = load_clip(path, "s.wav", 9.5, target, policy, 7, Resampler())
    monkeypatch.setattr(audio, "LONG_VALUES", 0)
    chunked = load_clip(path, "s.wav", 9.5, target, policy, 7, Resampler())
    assert whole[1] == chunked[1] == round(9.5 * target)
    if target == 44100:
        np.testing.assert_array_equal(chunked[0], whole[0])
    else:
        np.testing.assert_allclose(chunked[0], whole[0], rtol=0, atol=1e-5)
    start = audio.crop_start(60 * 44100, round(9.5 * 44100), policy, "s.wav", 7)
    expect = _signal(start, round(9.5 * 44100), 44100, 2).mean(axis=1)
    if target == 44100:  # and both equal the samples written (24-bit quantisation: one step 2^-23)
        np.testing.assert_allclose(chunked[0], expect, rtol=0, atol=2.0**-22)


# --- an hour-long file: data verify and run in bounded memory ---------------------------------------------------

HOUR_SR = 22050
MEASURE = r"""
import json, resource, sys, time
import torch, torchaudio  # noqa: F401  (the imports every command makes, before the baseline)
import evalbench.runner, evalbench.adapters.logmel, evalbench.data.verify  # noqa: F401
import evalbench.probes.linear, evalbench.metrics, evalbench.uncertainty  # noqa: F401
from evalbench.cli import main
def status_kib(field):
    return int(next(l for l in open("/proc/self/status") if l.startswith(field)).split()[1])
try:  # reset the peak (VmHWM) to the current RSS (Linux >= 4.0), so the import-time peak hides nothing
    open("/proc/self/clear_refs", "w").write("5")
    reset = True
except OSError:
    reset = False
peak = lambda: status_kib("VmHWM") if reset else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB
base, start = peak(), time.perf_counter()
rc = main(sys.argv[1:])
print(json.dumps({"rc": rc, "growth_mib": (peak() - base) / 1024, "base_mib": base / 1024, "reset": reset,
                  "seconds": time.perf_counter() - start}))
"""
TASK = (
    "name: hour\nversion: 1\ndescription: one hour-long clip among short ones\ndataset: {builder: manifest}\n"
    "audio: {sample_rate: 22050, clip_seconds: 2.0, crop: center}\nlabels: {type: single, classes: [low, high]}\n"
    "splits: {type: fixed}\nmetrics: [accuracy]\n"
)


def _measure(tmp_path: Path, *args: str) -> dict:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    for var, key in (("DATA", "data"), ("CACHE", "cache"), ("RESULTS", "results"), ("TASKS_DIR", "tasks")):
        env[f"EVALBENCH_{var}"] = str(tmp_path / key)
    done = subprocess.run(
        [sys.executable, "-c", MEASURE, *args], capture_output=True, text=True, env=env, timeout=600, cwd=tmp_path
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return {**json.loads(done.stdout.strip().splitlines()[-1]), "out": done.stdout[-2000:], "err": done.stderr[-2000:]}


@pytest.mark.slow
def test_hour_long_file_goes_through_verify_and_run_in_bounded_memory(tmp_path: Path) -> None:
    """An hour of 16-bit 22.05 kHz mono (159 MB on disk, 318 MB as float32): peak RSS grows < 100 MB.

    Run in subprocesses: ``data verify`` (every sample scanned for NaN/Inf/silence) and ``run --encoder
    logmel`` (the hour-long clip centre-cropped to 2 s and resampled to 16 kHz), each measured from the
    baseline after its imports.  Decoding the file whole would add at least its 318 MB of float32.
    """
    common = ["--tasks-dir", str(tmp_path / "tasks"), "--data-root", str(tmp_path / "data")]
    (tmp_path / "tasks").mkdir()
    (tmp_path / "tasks" / "hour.yaml").write_text(TASK)
    growth = {}
    for hour in (False, True):  # control: the same task with a 2 s first clip; then with the hour-long one
        source = _hour_task(tmp_path / f"source-{hour}", hour)
        prepared = _measure(tmp_path, "data", "prepare", "hour", "--source", str(source), *common)
        verified = _measure(tmp_path, "data", "verify", "hour", *common)
        run = ["run", "--encoder", "logmel", "--tasks", "hour", "--seeds", "1", "--encoders-dir", str(ENCODERS)]
        folders = ["--cache-dir", str(tmp_path / f"cache-{hour}"), "--results-dir", str(tmp_path / f"res-{hour}")]
        ran = _measure(tmp_path, *run, *common, *folders)
        assert prepared["rc"] == verified["rc"] == ran["rc"] == 0, (prepared, verified, ran)
        assert "all 12 files decode cleanly" in verified["out"]
        growth[hour] = {"verify": verified, "run": ran}
        print(f"hour={hour}: verify {verified['growth_mib']:.1f} MiB {verified['seconds']:.2f} s, "
              f"run {ran['growth_mib']:.1f} MiB {ran['seconds']:.2f} s")  # fmt: skip
        record = json.loads(next((tmp_path / f"res-{hour}").rglob("hour*.json")).read_text())
        assert record["scores"]["test"]["accuracy"]["mean"] is not None
    (tmp_path / "source-True" / "audio" / "clip_00.wav").unlink()
    for step in ("verify", "run"):
        long, control = growth[True][step]["growth_mib"], growth[False][step]["growth_mib"]
        assert long < 100 and long - control < 30, (step, long, control)


def _hour_task(source: Path, hour: bool) -> Path:
    """12 clips at 22.05 kHz (8/2/2 split, two classes); the first lasts an hour when ``hour``, else 2 s."""
    (source / "audio").mkdir(parents=True)
    rows = []
    for i in range(12):
        name = f"audio/clip_{i:02d}.wav"
        if i == 0 and hour:
            _write(source / name, 3600.0, HOUR_SR)
            assert (source / name).stat().st_size > 158_000_000
        else:
            t = np.arange(2 * HOUR_SR) / HOUR_SR
            freq = (300.0 if i % 2 else 2400.0) * (1 + 0.01 * i)  # distinct clips (duplicates are refused)
            sf.write(source / name, 0.4 * np.sin(2 * np.pi * freq * t), HOUR_SR)
        split = "train" if i < 8 else "valid" if i < 10 else "test"
        rows.append({"file_name": name, "label": ("high", "low")[i % 2], "split": split})
    pd.DataFrame(rows).to_csv(source / "metadata.csv", index=False)
    return source


def test_rss_measure_is_kib_on_linux() -> None:
    """ru_maxrss is in KiB on Linux (bytes on macOS): the bounds above assume it."""
    if not sys.platform.startswith("linux"):
        pytest.skip("Linux units")
    status = Path("/proc/self/status").read_text()
    hwm = int(next(line for line in status.splitlines() if line.startswith("VmHWM")).split()[1])
    assert abs(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - hwm) <= max(1024, hwm // 20)


# --- embeddings larger than the memory allowed -------------------------------------------------------------------


def test_scratch_matrix_is_mapped_when_large_and_leaves_no_file(tmp_path: Path) -> None:
    small = scratch_array((10, 4), tmp_path / "s")
    assert type(small) is np.ndarray and not (tmp_path / "s").exists()
    big = scratch_array((1000, 300), tmp_path / "s", min_bytes=1 << 20)
    assert isinstance(big, np.memmap) and big.shape == (1000, 300) and big.dtype == np.float32
    big[:] = np.arange(300, dtype=np.float32)
    assert list((tmp_path / "s").iterdir()) == []  # unlinked at once: nothing left even after kill -9
    assert big[999, 299] == 299.0 and all_finite(big)
    big[517, 3] = np.inf
    assert not all_finite(big)


def test_block_standardizer_equals_whole_matrix_statistics() -> None:
    """Block-wise two-pass statistics == ``x.mean`` / ``x.std`` in float64 (rtol 1e-12 stated; measured ≤ 1e-15).

    40,000 × 64 float64 is 20 MB: three blocks of :data:`~evalbench.utils.memory.BLOCK_BYTES`.
    """
    rng = np.random.default_rng(1)
    x = (rng.standard_normal((40_000, 64)) * rng.uniform(0.1, 50, 64) + rng.uniform(-100, 100, 64)).astype(np.float32)
    x[:, 7] = 3.0  # a constant column: scale 1
    rows = rng.permutation(40_000)[:31_000]
    assert len(list(row_blocks(len(rows), 64))) == 2
    scaler = Standardizer().fit(x, rows)
    ref = x[rows].astype(np.float64)
    np.testing.assert_allclose(scaler.mean_, ref.mean(axis=0), rtol=1e-12, atol=1e-12)
    std = ref.std(axis=0)
    np.testing.assert_allclose(scaler.scale_, np.where(std > 1e-8, std, 1.0), rtol=1e-12)
    assert scaler.scale_[7] == 1.0
    old = ((ref - ref.mean(axis=0)) / np.where(std > 1e-8, std, 1.0)).astype(np.float32)
    np.testing.assert_allclose(scaler.transform(x, rows), old, rtol=0, atol=1e-5)  # float32 of |z| ≲ 5: 1 ulp
    np.testing.assert_array_equal(Standardizer().fit(x[rows]).transform(x[rows]), scaler.transform(x, rows))


LIMITED = r"""
import json, resource, sys, time
import numpy as np, torch, torchaudio  # noqa: F401
import evalbench.runner, evalbench.adapters.randproj, evalbench.cli.embed, evalbench.cli.run  # noqa: F401
import evalbench.probes.linear, evalbench.metrics, evalbench.uncertainty, evalbench.results.store  # noqa: F401
from evalbench.cli import main
torch.ones(64, 64) @ torch.ones(64, 64)  # thread pools up before the baseline
def vm(field):
    return int(next(l for l in open("/proc/self/status") if l.startswith(field)).split()[1]) * 1024
allow = int(sys.argv[1]) << 20
base = vm("VmData")
resource.setrlimit(resource.RLIMIT_DATA, (base + allow, resource.getrlimit(resource.RLIMIT_DATA)[1]))
start = time.perf_counter()
try:
    rc = main(sys.argv[2:])
except (MemoryError, RuntimeError) as exc:  # an allocation refused outside evalbench's handling: a traceback
    rc = type(exc).__name__
resource.setrlimit(resource.RLIMIT_DATA, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))
print(json.dumps({"rc": rc, "seconds": time.perf_counter() - start, "vmdata_mib": (vm("VmData") - base) / 2**20}))
"""
WIDE_DIM, WIDE_CLIPS = 16384, 3200  # 3,200 × 16,384 float32 = 200 MiB of embeddings


def _limited(tmp_path: Path, allow_mib: int, *args: str) -> dict:
    """Run the CLI in a subprocess whose private memory (RLIMIT_DATA) may grow ``allow_mib`` above the baseline."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    done = subprocess.run(
        [sys.executable, "-c", LIMITED, str(allow_mib), *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=900,
        cwd=tmp_path,  # not the checkout's folder: `python -c` puts the working folder first on sys.path
    )
    assert done.stdout.strip(), done.stderr[-3000:]
    return {**json.loads(done.stdout.strip().splitlines()[-1]), "out": done.stdout, "err": done.stderr}


def _wide_task(tmp_path: Path) -> list[str]:
    """Tasks 'wide' and 'deep' of 3,200 clips of 0.1 s and an encoder 'wide' of 16,384 dims; the CLI arguments.

    'wide' splits 100 train / 50 valid / 3,050 test clips, 'deep' 2,400 / 400 / 400; both are prepared, and
    the encoder is ``randproj`` (a fixed random projection of log-mel frames).
    """
    tasks, encoders = tmp_path / "tasks", tmp_path / "encoders"
    tasks.mkdir()
    encoders.mkdir()
    common = ["--tasks-dir", str(tasks), "--data-root", str(tmp_path / "data")]
    t = np.arange(1600) / 16000
    labels = [("high", "low")[i % 2] for i in range(WIDE_CLIPS)]
    for task, (n_train, n_valid) in {"wide": (100, 50), "deep": (2400, 400)}.items():
        source = tmp_path / f"source-{task}"
        (source / "audio").mkdir(parents=True)
        names = [f"audio/c{i:04d}.wav" for i in range(WIDE_CLIPS)]
        for i, name in enumerate(names):
            freq = (300.0 if i % 2 else 2400.0) * (1 + i / WIDE_CLIPS)  # distinct clips (duplicates are refused)
            sf.write(source / name, (0.4 * np.sin(2 * np.pi * freq * t)).astype(np.float32), 16000, subtype="FLOAT")
        split = ["train"] * n_train + ["valid"] * n_valid + ["test"] * (WIDE_CLIPS - n_train - n_valid)
        pd.DataFrame({"file_name": names, "label": labels, "split": split}).to_csv(source / "metadata.csv", index=False)
        (tasks / f"{task}.yaml").write_text(
            f"name: {task}\nversion: 1\ndescription: many wide embeddings\ndataset: {{builder: manifest}}\n"
            "audio: {sample_rate: 16000, clip_seconds: 0.1}\nlabels: {type: single, classes: [low, high]}\n"
            "splits: {type: fixed}\nmetrics: [accuracy]\n"
        )
        assert main(["data", "prepare", task, "--source", str(source), *common]) == 0
    (encoders / "wide.yaml").write_text(
        "name: wide\nadapter: randproj\ndescription: a wide random projection\npooling: mean\n"
        f"options:\n  dim: {WIDE_DIM}\n  seed: 0\n"
    )
    return [*common, "--encoders-dir", str(encoders), "--cache-dir", str(tmp_path / "cache")]


ALLOW_MIB = 150
"""Private memory (RLIMIT_DATA) the runs below may add to their baseline; the embedding matrix is 200 MiB.
Measured needs: ``embed`` (extraction, cache, export) passes at 75 MiB, fails at 50; ``run`` of 'wide' (probe on
150 rows) passes at 100, fails at 95; ``run`` of 'deep' (2,800 training and validation rows, 175 MiB as float32)
passes at 100, fails at 75 (before the probe read its rows block by block, it needed 800; 600 failed).  Before
the memory-mapped scratch matrices, extraction alone held the 200 MiB matrix twice in private memory."""


def _test_scores(results: Path) -> np.ndarray:
    with np.load(results / "wide" / "deep.linear.predictions.npz") as saved:
        return saved["scores"]


@pytest.mark.slow
def test_embeddings_larger_than_the_memory_allowed_are_extracted_and_probed(tmp_path: Path) -> None:
    """RLIMIT_DATA = baseline + 150 MiB, embedding matrix 3,200 × 16,384 float32 = 200 MiB (memory-mapped).

    With 30 MiB allowed, not even a batch fits: one clear error naming the task and the batch size.
    'wide': extraction, cache, standardisation and the linear probe on 150 training/validation rows (the test
    rows scored block by block) complete, and the record is written.  'deep': 2,400 + 400 training and
    validation rows (175 MiB as float32, ~700 MiB with the solver's float64 copies held whole) go to a scratch
    file and the probe reads them block by block; with no room even for its 2,400² row-space matrices, it
    solves the unreduced problem (rank 16,384).  A rerun with memory to spare takes the whole-matrix path
    (row space, rank < 2,400): the same strength and the same test scores (atol 1e-6; measured 1.3e-9).
    """
    common = _wide_task(tmp_path)
    assert WIDE_CLIPS * WIDE_DIM * 4 > (ALLOW_MIB + 40) << 20
    run = ["run", "--encoder", "wide", "--seeds", "1", "--results-dir", str(tmp_path / "res")]
    starved = _limited(tmp_path, 30, *run, "--tasks", "wide", *common, "--cache-dir", str(tmp_path / "starved"))
    errors = [line for line in starved["err"].splitlines() if line.startswith("evalbench: error: ")]
    assert starved["rc"] == 2 and len(errors) == 1 and "Traceback" not in starved["err"], starved["err"][-3000:]
    assert "out of memory extracting wide/wide/" in errors[0] and "smaller --batch-size" in errors[0], errors[0]
    assert not list((tmp_path / "starved").rglob("*.npy"))  # a batch that did not fit: nothing cached

    wide = _limited(tmp_path, ALLOW_MIB, *run, "--tasks", "wide", *common)
    print({k: v for k, v in wide.items() if k not in ("out", "err")})
    assert wide["rc"] == 0, wide["err"][-3000:]
    record = json.loads((tmp_path / "res" / "wide" / "wide.linear.json").read_text())
    assert record["scores"]["test"]["accuracy"]["mean"] > 0.9  # the two tones are told apart
    entries = sorted((tmp_path / "cache" / "wide" / "wide").glob("*.npy"))
    shapes = sorted(np.load(e, mmap_mode="r").shape for e in entries)
    assert shapes == [(50, WIDE_DIM), (100, WIDE_DIM), (3050, WIDE_DIM)]
    assert not list((tmp_path / "cache" / ".scratch").iterdir())  # scratch files never outlive the process

    deep = _limited(tmp_path, ALLOW_MIB, *run, "--tasks", "deep", *common)
    print({k: v for k, v in deep.items() if k not in ("out", "err")})
    assert deep["rc"] == 0 and "Traceback" not in deep["err"], deep["err"][-3000:]
    limited = json.loads((tmp_path / "res" / "wide" / "deep.linear.json").read_text())["runs"][0]["chosen"]
    assert limited["rank"] == WIDE_DIM and limited["converged"]  # unreduced, on row blocks
    assert not list((tmp_path / "cache" / ".scratch").iterdir())
    roomy = _limited(tmp_path, 4000, *run[:-1], str(tmp_path / "res2"), "--tasks", "deep", *common)
    assert roomy["rc"] == 0 and "3 part(s) cached" in roomy["out"], roomy["err"][-3000:]
    whole = json.loads((tmp_path / "res2" / "wide" / "deep.linear.json").read_text())["runs"][0]["chosen"]
    assert whole["rank"] < 2400 and whole["l2"] == limited["l2"]
    np.testing.assert_allclose(_test_scores(tmp_path / "res"), _test_scores(tmp_path / "res2"), rtol=0, atol=1e-6)


def test_probe_out_of_memory_is_one_clear_error(tmp_path: Path, tiny_tasks: Path, tiny_data: Path, monkeypatch) -> None:
    """A MemoryError (numpy) or the CPU allocator's RuntimeError (torch) in the probe: one EvalbenchError."""
    from evalbench import protocol
    from evalbench.data.prepare import open_task_data
    from evalbench.errors import EvalbenchError
    from evalbench.specs.task import load_task

    data = open_task_data(load_task("synth_timbre", tiny_tasks), tiny_data)
    x = np.random.default_rng(0).standard_normal((data.n, 6)).astype(np.float32)
    torch_message = "[enforce fail at alloc_cpu.cpp:127] DefaultCPUAllocator: can't allocate memory: you tried to"
    for failure in (MemoryError("Unable to allocate 1.2 GiB"), RuntimeError(torch_message), RuntimeError("other")):

        def fit(self, *args, failure=failure):
            raise failure

        monkeypatch.setattr(protocol.PROBES.get("linear"), "fit", fit)
        if str(failure) == "other":  # any other error passes through unchanged
            with pytest.raises(RuntimeError, match=r"^other$"):
                protocol.evaluate_probe(data, x, "linear", seeds=[0])
            continue
        with pytest.raises(EvalbenchError, match=r"task 'synth_timbre': out of memory in the linear probe") as err:
            protocol.evaluate_probe(data, x, "linear", seeds=[0])
        assert "× 6 dimensions" in str(err.value) and err.value.__cause__ is None


def test_extraction_into_a_mapped_scratch_matrix_equals_extraction_in_ram(
    tmp_path: Path, tiny_tasks: Path, tiny_data: Path, monkeypatch
) -> None:
    """The same embeddings whether parts and the matrix live in RAM or in memory-mapped scratch files.

    Exact: the same values, written to different memory.
    """
    import torch

    from evalbench.data.prepare import open_task_data
    from evalbench.embed import extract
    from evalbench.embed.cache import EmbeddingCache
    from evalbench.specs.encoder import load_encoder
    from evalbench.specs.task import load_task

    data = open_task_data(load_task("synth_timbre", tiny_tasks), tiny_data)
    enc = extract.load_encoder_model(load_encoder("randproj", ENCODERS), torch.device("cpu"))
    in_ram, _ = extract.embed_task(enc, data, EmbeddingCache(tmp_path / "a"), batch_size=8, workers=0)
    mapped = []

    def scratch(shape, folder, min_bytes=0):
        mapped.append(scratch_array(shape, folder, 0))
        return mapped[-1]

    monkeypatch.setattr(extract, "scratch_array", scratch)
    on_disk, _ = extract.embed_task(enc, data, EmbeddingCache(tmp_path / "b"), batch_size=8, workers=0)
    assert isinstance(on_disk, np.memmap) and len(mapped) == 1 + len(data.parts())
    assert type(in_ram) is np.ndarray
    np.testing.assert_array_equal(on_disk, in_ram)


def test_extraction_out_of_memory_is_one_clear_error(tmp_path: Path, tiny_tasks: Path, tiny_data: Path) -> None:
    """A batch whose working memory is refused stops extraction with the task, batch size and what to change."""
    import torch

    from evalbench.data.prepare import open_task_data
    from evalbench.embed import extract
    from evalbench.embed.cache import EmbeddingCache
    from evalbench.errors import EvalbenchError
    from evalbench.specs.encoder import load_encoder
    from evalbench.specs.task import load_task

    data = open_task_data(load_task("synth_timbre", tiny_tasks), tiny_data)
    enc = extract.load_encoder_model(load_encoder("randproj", ENCODERS), torch.device("cpu"))

    def pooled(*args, **kwargs):
        raise RuntimeError("[enforce fail at alloc_cpu.cpp:127] DefaultCPUAllocator: can't allocate memory: 8 bytes")

    enc.pooled = pooled
    with pytest.raises(EvalbenchError, match=r"task 'synth_timbre': out of memory extracting randproj/synth_timbre/"):
        extract.embed_task(enc, data, EmbeddingCache(tmp_path), batch_size=8, workers=0)
    with pytest.raises(EvalbenchError, match=r"in batches of 8 clips .* smaller --batch-size needs less"):
        extract.embed_task(enc, data, EmbeddingCache(tmp_path), batch_size=8, workers=0)
    assert not list(tmp_path.rglob("*.npy"))  # nothing cached
