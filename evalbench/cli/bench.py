"""``evalbench bench [PART ...]``: speed figures, as ratios measured side by side in one process.

A speed target is a ratio between the thing measured and a baseline run in the
same process, never an absolute time and never a timed unit test.  With no
PART every part runs.  Data and caches go to a temporary folder (removed
afterwards) unless --data-root/--cache-dir are given; $EVALBENCH_DATA and
$EVALBENCH_CACHE are not used.  --quick runs smaller sizes for a smoke check:
its figures are only indicative.  The exit status is 0 whether or not a target
is met (the table says so); 2 for a mistake such as an unknown part.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

from evalbench.bench import PARTS
from evalbench.errors import EvalbenchError
from evalbench.utils.console import say


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Register the subcommand."""
    p = sub.add_parser(
        "bench",
        help="speed figures: ratios measured side by side in one process",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("parts", nargs="*", metavar="PART", help=f"part to run (default: all): {', '.join(PARTS)}")
    p.add_argument("--quick", action="store_true", help="small sizes (a smoke check; figures only indicative)")
    p.add_argument("--json", type=Path, metavar="FILE", help="also write the figures and machine facts to FILE")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N (default: auto)")
    p.add_argument("--threads", type=int, help="torch intra-op threads (default: torch's own default)")
    g = p.add_argument_group("pretrain part")
    g.add_argument(
        "--methods", default="byola", help="comma-separated pretraining methods, smoke preset (default: byola)"
    )
    g = p.add_argument_group("load part")
    g.add_argument("--clips", type=int, help="clips of the generated task (default 100,000; --quick 2,000)")
    # not add_dirs: its help names the user's folders, and bench defaults to a temporary one
    p.add_argument("--data-root", help="data folder (default: a temporary folder, removed afterwards)")
    p.add_argument("--cache-dir", help="cache folder (default: a temporary folder, removed afterwards)")
    p.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    """Run the parts, print the table (and notes), optionally write the JSON."""
    from tabulate import tabulate

    from evalbench.bench import BenchContext, machine_facts, resolve_parts, run_parts, scratch_dirs

    parts = resolve_parts(args.parts)
    if args.threads is not None and args.threads < 1:
        raise EvalbenchError(f"--threads {args.threads}: must be a positive integer")
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    if not methods:
        raise EvalbenchError("--methods: give at least one pretraining method, e.g. --methods byola")
    import torch

    torch.set_num_threads(args.threads or torch.get_num_threads())
    machine = machine_facts(args.device)
    command = "evalbench bench " + " ".join(parts) + (" --quick" if args.quick else "")
    command += f" --clips {args.clips}" if args.clips is not None and "load" in parts else ""
    print(
        f"{command}: torch {machine['torch']}, {machine['threads']} torch thread(s), "
        f"{machine.get('usable_cpus', machine['cpu_count'])} usable CPU(s), device {machine['device']}, "
        f"load average {' '.join(map(str, machine.get('load_average', ['?'])))}"
    )
    began = time.perf_counter()
    with scratch_dirs(args.data_root, args.cache_dir) as (data_root, cache_dir):
        ctx = BenchContext(args.quick, data_root, cache_dir, args.device, {"methods": methods, "clips": args.clips})
        figures = run_parts(parts, ctx)
    seconds = time.perf_counter() - began
    if "load_average" in machine:
        machine["load_average_after"] = [round(x, 2) for x in os.getloadavg()]
    rows = [
        [
            f.name,
            f"{f.value:.3g} {f.unit}",
            "" if f.ratio is None else f"{f.ratio:.2f}",
            f.target,
            {True: "yes", False: "NO", None: ""}[f.met],
        ]
        for f in figures
    ]
    print(tabulate(rows, headers=["figure", "measured", "ratio", "target", "met"], disable_numparse=True))
    print("notes:")
    for f in figures:
        if f.note:
            print(f"  {f.name}: {f.note}")
    load = (
        f"; load average after {' '.join(map(str, machine['load_average_after']))}" if "load_average" in machine else ""
    )
    print(f"{command}: {seconds:.0f} s in all{load}")
    if args.json is not None:
        from evalbench.utils.io import atomic_write_json

        record = {
            "command": command,
            "parts": parts,
            "quick": args.quick,
            "options": {"methods": methods, "clips": args.clips},
            "machine": machine,
            "seconds": seconds,
            "figures": [f.as_dict() for f in figures],
        }
        atomic_write_json(args.json, record, allow_nan=False)
        say(f"wrote {args.json}")
    return 0
