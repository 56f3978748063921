"""``evalbench bench rerun``: what a rerun with nothing to do costs, against the cold run it repeats.

The command measured is ``evalbench run --encoder logmel --tasks synth_pitch``
(the ``evalbench`` preset, 5 seeds), each time as a user runs it: a fresh
``python -m evalbench`` process, timed from launch to exit.

- **cold**: empty cache and results (the synthetic dataset already generated:
  generating it is preparation, done once per machine, not part of a run);
- **rerun**: the same command again, every record up to date — the median of
  three.  It answers from the up-to-date memo
  (:mod:`evalbench.results.uptodate`) without importing torch or
  scikit-learn; the figure's note says which heavy modules the rerun imported
  (none is the design).

Target: cold ÷ rerun ≥ 20.  ``--quick`` uses ``synth_pitch`` shrunk to 10 clips
per class (120 clips) and 1 seed, so its cold run, and the ratio, are smaller.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import time

from evalbench.bench import BenchContext, Figure, ratio_at_least
from evalbench.paths import builtin_catalog

TASK = "synth_pitch"
TARGET = 20.0
PROBE_MODULES = """
import json, sys
from evalbench.cli import main
rc = main(sys.argv[1:])
print(json.dumps({"rc": rc, "heavy": sorted(m for m in ("torch", "sklearn", "pandas", "numpy") if m in sys.modules)}))
"""


def _timed(args: list[str], env: dict[str, str]) -> tuple[float, dict]:
    """Wall seconds of one ``evalbench`` process, and its last stdout line parsed (exit code, heavy modules)."""
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", PROBE_MODULES, *args], capture_output=True, text=True, env=env)
    seconds = time.perf_counter() - start
    if proc.returncode != 0:
        raise RuntimeError(f"bench rerun: `evalbench {' '.join(args)}` failed:\n{proc.stderr[-2000:]}")
    return seconds, json.loads(proc.stdout.strip().splitlines()[-1])


def measure(ctx: BenchContext) -> list[Figure]:
    """Cold run, then three up-to-date reruns, each a fresh process (module docstring)."""
    specs = ctx.cache_dir.parent / "bench-rerun-tasks"
    shutil.copytree(builtin_catalog() / "tasks", specs, dirs_exist_ok=True)
    seeds = "5"
    if ctx.quick:
        spec = specs / f"{TASK}.yaml"
        spec.write_text(re.sub(r"per_class: \d+", "per_class: 10", spec.read_text()))
        seeds = "1"
    from evalbench.data.prepare import prepare
    from evalbench.specs.task import load_task

    prepare(load_task(TASK, specs), ctx.data_root)  # preparation, not part of the run
    cache, results = ctx.cache_dir / "bench-rerun", ctx.cache_dir / "bench-rerun-results"
    args = ["run", "--encoder", "logmel", "--tasks", TASK, "--seeds", seeds, "--device", "cpu"]
    args += ["--tasks-dir", str(specs), "--data-root", str(ctx.data_root), "--cache-dir", str(cache)]
    args += ["--results-dir", str(results)]
    env = {k: v for k, v in os.environ.items() if not k.startswith("EVALBENCH_")}
    ctx.log(f"bench rerun: cold `evalbench {' '.join(args[:7])}`")
    cold, _ = _timed(args, env)
    reruns = [_timed(args, env) for _ in range(3)]
    warm = statistics.median(s for s, _ in reruns)
    heavy = sorted({m for _, status in reruns for m in status["heavy"]})
    note = (
        f"`evalbench {' '.join(args[:7])}` in a fresh process each time, launch to exit; cold: empty cache and "
        f"results (dataset prepared beforehand); rerun: median of 3 ({', '.join(f'{s:.2f}' for s, _ in reruns)} s); "
        f"heavy modules the reruns imported: {', '.join(heavy) or 'none'}"
    )
    return [
        Figure(f"rerun {TASK}: cold run", cold, "s", note="informational: the ratio's numerator"),
        ratio_at_least(f"rerun {TASK}: cold ÷ up-to-date rerun", cold, warm, "s", TARGET, note),
    ]


__all__ = ["measure"]
