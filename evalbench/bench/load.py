"""The ``load`` bench part: a 100,000-clip task through prepare, verify, extraction and the probe.

Why: the other parts time one stage on a few thousand clips.  A task of
100,000 clips (Speech Commands, NSynth and VoxCeleb1 are that size) is where a
per-clip cost that grows with the task (a quadratic check, a Python loop over
all pairs), memory held per clip (a list of waveforms, one DataFrame row
object per clip) or a file-count limit shows up.  This part pushes such a task
through the stages a user runs, on the machine at hand, and reports wall time
and peak resident memory per stage, so that growth between sizes is visible
(run it with ``--clips 10000`` and with the default to compare).

Data: ``N`` clips (default 100,000; ``--quick`` 2,000; ``--clips N``) of
0.10–0.25 s (uniform), 16 kHz 16-bit mono WAV in subfolders of 1,000 files,
four classes (a tone at 220, 440, 880 or 1,760 Hz, ±3 % detune, random phase,
white noise at 10–30 dB SNR), clip ``i`` in class ``i mod 4`` and in split
train / valid / test for ``i mod 10`` in 0–6 / 7 / 8–9.  The audio and a
canonical ``metadata.csv`` are written to ``<data root>/bench-load-source-N``
and the task (``bench_load_N``, ``builder: manifest``, unit 0.25 s) is a user's
private dataset as ``evalbench data prepare TASK --source DIR`` reads it.
Generating it is not a stage (its time is given as an informational figure).

Stages, each the very function the command calls, run one after the other in
one fresh child process (``sys.executable -c``), so that the parent's memory
is not counted:

1. ``prepare``: :func:`evalbench.data.prepare.prepare` (``data prepare``):
   read the metadata, check every file exists, hash every clip, write the
   canonical metadata and the content index;
2. ``verify``: :func:`evalbench.data.verify.verify_task` (``data verify``):
   decode and check every clip, count clips per class and split;
3. ``extract``: open the task data as ``run``'s preflight does and
   :func:`evalbench.embed.extract.embed_views` with ``logmel`` (128-d) into an
   empty cache, ``run``'s defaults (batch 32, ``--workers auto``): cold;
4. ``probe``: :func:`evalbench.runner.run` with ``logmel`` and ``--probe
   linear`` under the default protocol: it re-opens the data, finds the
   embeddings just cached, runs the evaluation protocol (standardise, the
   linear probe's L2 path chosen on validation, one test pass, bootstrap
   interval) and writes the run record and its predictions.

Per stage: wall time, clips/s and the peak resident set size *of that stage*
(Linux: the kernel's high-water mark ``VmHWM``, reset before each stage by
writing ``5`` to ``/proc/self/clear_refs``; where that is refused the peak
so far is given and the note says so).  For the whole child:
``getrusage(RUSAGE_SELF).ru_maxrss`` (NOTE: carried over ``execve`` from the
forking parent, so at least the parent's RSS at the time: see
:func:`evalbench.bench.scaling.peak_rss`) and ``RUSAGE_CHILDREN`` (decoding
workers, none on CPU).  As a check that the numbers come from a working
pipeline, the record's test accuracy is a figure with a target (the tones are
separable: ≥ 0.9) and must be finite.
"""

from __future__ import annotations

import json
import resource
import struct
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from evalbench.bench import BenchContext, Figure
from evalbench.errors import EvalbenchError

FULL, QUICK, FEWEST = 100_000, 2_000, 100
RATE = 16_000
SECONDS = (0.10, 0.25)
FREQS = {"a220": 220.0, "a440": 440.0, "a880": 880.0, "a1760": 1760.0}
PER_FOLDER = 1000
ENCODER = "logmel"
STAGES = ("prepare", "verify", "extract", "probe")
MIN_ACCURACY = 0.9
GENERATOR = 1  # bump when the generated audio changes: a source folder of another version is rewritten
MARK = "bench-load-json "  # prefix of the child's result lines (its stdout also carries status lines)
CHILD = "import sys; from evalbench.bench.load import child; child(sys.argv[1])"
MB = 2**20


def split_of(i: int) -> str:
    """Split of clip ``i``: 70 / 10 / 20 % by ``i mod 10``."""
    share = i % 10
    return "train" if share < 7 else "valid" if share < 8 else "test"


def wav_bytes(samples: np.ndarray) -> bytes:
    """A canonical 44-byte-header RIFF/WAVE file of 16-bit mono ``samples`` at :data:`RATE`.

    Written by hand because ``soundfile.write`` costs ~3 ms per file (opening libsndfile), which made generating
    100,000 clips take longer than the stages measured; the format is the plain PCM WAV every decoder reads.
    """
    data = samples.astype("<i2").tobytes()
    fmt = struct.pack("<HHIIHH", 1, 1, RATE, RATE * 2, 2, 16)
    return (
        b"RIFF"
        + struct.pack("<I", 36 + len(data))
        + b"WAVEfmt "
        + struct.pack("<I", 16)
        + fmt
        + b"data"
        + (struct.pack("<I", len(data)) + data)
    )


def write_source(folder: Path, n: int, seed: int = 0) -> float:
    """Write ``n`` clips and their ``metadata.csv`` into ``folder`` unless a complete copy is there; seconds spent.

    A ``done.json`` marker (clip count and generator version) is written last, so an interrupted generation
    is redone rather than used.
    """
    marker = folder / "done.json"
    want = {"clips": n, "generator": GENERATOR, "seed": seed}
    try:
        if json.loads(marker.read_text()) == want:
            return 0.0
    except (OSError, ValueError):
        pass
    start = time.perf_counter()
    names = list(FREQS)
    rng = np.random.default_rng(seed)
    lines = ["file_name,label,split,group"]
    for i in range(n):
        rel = f"{i // PER_FOLDER:03d}/clip{i:06d}.wav"
        if i % PER_FOLDER == 0:
            (folder / rel).parent.mkdir(parents=True, exist_ok=True)
        label = names[i % len(names)]
        length = int(rng.integers(round(SECONDS[0] * RATE), round(SECONDS[1] * RATE) + 1))
        t = np.arange(length) / RATE
        tone = np.sin(2 * np.pi * FREQS[label] * rng.uniform(0.97, 1.03) * t + rng.uniform(0, 2 * np.pi))
        noise = rng.standard_normal(length) * 10 ** (-rng.uniform(10, 30) / 20) / np.sqrt(2)
        (folder / rel).write_bytes(wav_bytes((0.3 * (tone + noise) * 32767 / 1.5).astype("<i2")))
        lines.append(f"{rel},{label},{split_of(i)},g{i}")
    (folder / "metadata.csv").write_text("\n".join(lines) + "\n")
    marker.write_text(json.dumps(want))
    return time.perf_counter() - start


def task_spec(folder: Path, n: int) -> str:
    """Write the task spec ``bench_load_<n>.yaml`` into ``folder``; its name."""
    name = f"bench_load_{n}"
    spec = {
        "name": name,
        "version": 1,
        "description": f"{n} generated clips of {SECONDS[0]}-{SECONDS[1]} s at {RATE} Hz for `evalbench bench load`.",
        "dataset": {"builder": "manifest", "min_seconds": SECONDS[0] / 2, "max_seconds": 1.0},
        "audio": {"sample_rate": RATE, "clip_seconds": SECONDS[1], "crop": "start"},
        "labels": {"type": "single", "classes": list(FREQS)},
        "splits": {"type": "fixed"},
        "metrics": ["accuracy", "roc_auc"],
    }
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{name}.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    return name


def reset_peak() -> bool:
    """Reset this process's peak RSS (``VmHWM``) to its current RSS (Linux); False where that is refused."""
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
        return True
    except OSError:
        return False


def _emit(record: dict[str, Any]) -> None:
    print(MARK + json.dumps(record), flush=True)


def child(arguments: str) -> None:
    """Entry point of the child process: run the four stages, printing one marked JSON line per stage and a total.

    Args:
        arguments: JSON with ``task``, ``tasks`` (folder), ``source``, ``data_root``, ``cache``, ``results``,
            ``device`` and ``threads``.
    """
    import torch

    from evalbench.bench.scaling import current_rss, peak_rss
    from evalbench.data.prepare import open_task_data, prepare
    from evalbench.data.verify import verify_task
    from evalbench.embed.cache import EmbeddingCache
    from evalbench.embed.encoder import load_encoder_model
    from evalbench.embed.extract import embed_views
    from evalbench.paths import builtin_catalog
    from evalbench.runner import RunConfig, run
    from evalbench.specs.encoder import parse_encoder_file
    from evalbench.specs.task import load_task
    from evalbench.utils.console import configure
    from evalbench.utils.device import resolve_device

    args = json.loads(arguments)
    torch.set_num_threads(args["threads"])
    configure("normal")  # warnings on stderr (quoted if the child fails); results are the marked stdout lines
    data_root, cache = Path(args["data_root"]), Path(args["cache"])
    task = load_task(args["task"], Path(args["tasks"]))
    device = resolve_device(args["device"])
    spec = parse_encoder_file(builtin_catalog() / "encoders" / f"{ENCODER}.yaml")
    _emit({"stage": "start", "rss": current_rss(), "rss_peak": peak_rss()})
    out: dict[str, Any] = {}

    def stage_prepare() -> str:
        dataset, _ = prepare(task, data_root, Path(args["source"]), force=True)
        return f"{len(dataset.metadata)} clips prepared"

    def stage_verify() -> str:
        report = verify_task(task, data_root)
        if report.problems:
            raise EvalbenchError(f"bench load: verify found {len(report.problems)} problem file(s)")
        return f"{report.n_files} files decode cleanly"

    def stage_extract() -> str:
        data = open_task_data(task, data_root)
        enc = load_encoder_model(spec, device)
        x, _, stats = embed_views(enc, data, EmbeddingCache(cache), 32, None)
        if x is None or x.shape != (data.n, enc.dim) or not np.isfinite(x).all():
            raise EvalbenchError(f"bench load: extraction gave {None if x is None else x.shape}, not ({data.n}, ...)")
        return f"{stats.clips_computed} clips embedded, {x.shape[1]}-d"

    def stage_probe() -> str:
        cfg = RunConfig(data_root, cache, Path(args["results"]), device=args["device"], overwrite=True)
        outcome = run([spec], [task], cfg, log=lambda _: None)[0]
        record = json.loads(Path(outcome.path).read_text())
        out["accuracy"] = record["scores"]["test"]["accuracy"]["mean"]
        out["timings"] = record["timings"]
        return f"record {outcome.status}, probe {record['timings']['probe_s']:.1f} s of the stage"

    for name, fn in zip(STAGES, (stage_prepare, stage_verify, stage_extract, stage_probe), strict=True):
        reset = reset_peak()
        start_rss, begin = current_rss(), time.perf_counter()
        detail = fn()
        seconds = time.perf_counter() - begin
        _emit({"stage": name, "seconds": seconds, "rss_start": start_rss, "rss_peak": peak_rss(), "reset": reset,
               "rss_end": current_rss(), "detail": detail})  # fmt: skip
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    kids = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    unit = 1 if sys.platform == "darwin" else 1024
    _emit({"stage": "end", "ru_maxrss_self": own * unit, "ru_maxrss_children": kids * unit, **out})


def run_child(args: dict[str, Any]) -> list[dict[str, Any]]:
    """Run :func:`child` in a fresh process; its marked result lines.

    Raises:
        EvalbenchError: The child failed (the end of its error output is quoted).
    """
    proc = subprocess.run([sys.executable, "-c", CHILD, json.dumps(args)], capture_output=True, text=True)
    lines = [json.loads(line[len(MARK) :]) for line in proc.stdout.splitlines() if line.startswith(MARK)]
    if proc.returncode != 0 or not lines or lines[-1].get("stage") != "end":
        tail = "\n".join(proc.stderr.strip().splitlines()[-5:])
        raise EvalbenchError(f"bench load: the pipeline failed (exit {proc.returncode}):\n{tail}")
    return lines


def figures_of(n: int, lines: list[dict[str, Any]], generate_seconds: float) -> list[Figure]:
    """The table's rows: per stage its time and peak RSS, then the whole child's, then the record's accuracy."""
    by_stage = {line["stage"]: line for line in lines}
    base = by_stage["start"]
    figures = [
        Figure(f"load {n:,} clips: generate (not a stage)", generate_seconds, "s",
               note="0 s: a complete copy was already on disk" if generate_seconds == 0 else
               f"{n / generate_seconds:.0f} clips/s, tiny 16-bit WAVs and metadata.csv"),
    ]  # fmt: skip
    for name in STAGES:
        s = by_stage[name]
        scope = "this stage's own peak (VmHWM reset)" if s["reset"] else "NOT reset: peak of the child so far"
        figures.append(
            Figure(f"load {n:,} clips: {name} time", s["seconds"], "s", note=f"{n / s['seconds']:.0f} clips/s; "
                   f"{s['detail']}")
        )  # fmt: skip
        rss = "" if s["rss_start"] is None else f"; RSS {s['rss_start'] / MB:.0f} MiB at its start, "
        rss += "" if s["rss_end"] is None else f"{s['rss_end'] / MB:.0f} MiB at its end"
        figures.append(Figure(f"load {n:,} clips: {name} peak RSS", s["rss_peak"] / MB, "MiB", note=scope + rss))
    end = by_stage["end"]
    after_imports = "" if base["rss"] is None else f"; {base['rss'] / MB:.0f} MiB after imports"
    figures += [
        Figure(f"load {n:,} clips: peak RSS of the child (ru_maxrss)", end["ru_maxrss_self"] / MB, "MiB",
               note="getrusage(RUSAGE_SELF); carried over execve from the parent, so at least the parent's RSS"
               + after_imports),
        Figure(f"load {n:,} clips: peak RSS of its children (ru_maxrss)", end["ru_maxrss_children"] / MB, "MiB",
               note="getrusage(RUSAGE_CHILDREN): decoding workers (none on CPU: --workers auto is 0) and short "
               "subprocesses such as `git` (the record's provenance), which inherit the figure at fork: an upper "
               "bound, not their own use"),
    ]  # fmt: skip
    accuracy = end.get("accuracy")
    ok = accuracy is not None and np.isfinite(accuracy) and accuracy >= MIN_ACCURACY
    figures.append(
        Figure(f"load {n:,} clips: record test accuracy ({ENCODER}, linear)", float(accuracy or 0.0), "",
               target=f"≥ {MIN_ACCURACY:g}", met=bool(ok), note="the record's mean over seeds; the tones are "
               "separable, so a lower value means the pipeline lost or mixed up clips")
    )  # fmt: skip
    return figures


def measure(ctx: BenchContext) -> list[Figure]:
    """Every figure of the part (module docstring)."""
    import torch

    n = int(ctx.options.get("clips") or (QUICK if ctx.quick else FULL))
    if n < FEWEST:
        raise EvalbenchError(f"--clips {n}: the load part needs at least {FEWEST} clips (4 classes, 3 splits)")
    source = ctx.data_root / f"bench-load-source-{n}"
    source.mkdir(parents=True, exist_ok=True)
    ctx.log(f"bench load: generating {n:,} clips of {SECONDS[0]:g}-{SECONDS[1]:g} s at {RATE} Hz in {source}")
    generate = write_source(source, n)
    tasks = ctx.cache_dir / "bench-tasks"
    name = task_spec(tasks, n)
    cache = ctx.cache_dir / f"bench-load-cache-{n}"
    if cache.exists():  # cold extraction: an earlier run's embeddings must not be reused
        import shutil

        shutil.rmtree(cache)
    ctx.log(f"bench load: {' → '.join(STAGES)} in a child process")
    lines = run_child(
        {
            "task": name,
            "tasks": str(tasks),
            "source": str(source),
            "data_root": str(ctx.data_root),
            "cache": str(cache),
            "results": str(ctx.cache_dir / f"bench-load-results-{n}"),
            "device": ctx.device,
            "threads": torch.get_num_threads(),
        }
    )
    return figures_of(n, lines, generate)


__all__ = ["FULL", "QUICK", "child", "figures_of", "measure", "reset_peak", "task_spec", "write_source"]
