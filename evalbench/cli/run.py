"""``evalbench run``: score encoders on tasks and write run records.

``--encoder`` takes encoder names from ``encoders/`` and ``hear:<module>[:<weights>]``
for any installed HEAR-API module.  ``--checkpoint PATH`` scores another weights
file of one encoder's family without writing YAML; its records go to
``results/<encoder>@<file stem>-<sha256[:8]>/`` and carry the file's SHA-256.

A rerun whose every record is up to date answers from the up-to-date memo
(:mod:`evalbench.results.uptodate`) without importing torch or scikit-learn.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import TYPE_CHECKING

from evalbench.cli.common import add_compute, add_dirs, add_extraction, resolve_pipeline_args
from evalbench.errors import EvalbenchError
from evalbench.utils import console
from evalbench.utils.console import say

if TYPE_CHECKING:
    from evalbench.results.uptodate import Inputs


def parse_seeds(text: str | None) -> list[int] | None:
    """``N`` → the N reference seeds 42, 43, ...; ``a,b,c`` → those seeds; None → the protocol preset's."""
    if text is None:
        return None
    try:
        if "," not in text:
            count = int(text)
            if count < 1:
                raise ValueError
            return list(range(42, 42 + count))
        seeds = [int(s) for s in text.split(",") if s.strip()]
    except ValueError:
        raise EvalbenchError(
            f"--seeds {text}: give a count (e.g. 3) or a comma-separated list (e.g. 42,43,44)"
        ) from None
    if len(set(seeds)) != len(seeds) or not seeds:
        raise EvalbenchError(f"--seeds {text}: seeds must be distinct integers")
    return seeds


def search_options(args: argparse.Namespace) -> dict[str, object]:
    """Probe options from ``--search`` and ``--trials`` (only those given)."""
    if args.trials is not None and args.trials < 1:
        raise EvalbenchError(f"--trials {args.trials}: give a positive number of trials")
    if (args.search or args.trials is not None) and args.probe != "mlp":
        raise EvalbenchError(f"--search/--trials apply to --probe mlp, not --probe {args.probe}")
    options: dict[str, object] = {}
    if args.search:
        options["search"] = args.search
    if args.trials is not None:
        options["trials"] = args.trials
    return options


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Register the subcommand."""
    p = sub.add_parser("run", help="evaluate encoders on tasks", description=__doc__)
    p.add_argument(
        "--encoder", required=True, help="encoder name(s), comma-separated; hear:<module>[:<weights>] for HEAR modules"
    )
    p.add_argument(
        "--checkpoint",
        metavar="PATH|NAME=PATH,...",
        help="score this weights file with the (single) encoder's family, or name a file per encoder "
        "(byola-v1-512=a.pth,msn=b.pt); a file of another family is named (results: <encoder>@<stem>-<sha256[:8]>)",
    )
    p.add_argument("--tasks", required=True, help="task and/or suite name(s), comma-separated (e.g. synth)")
    p.add_argument("--probe", default="linear", help="probe: linear, mlp or knn (default: linear)")
    p.add_argument(
        "--search",
        choices=("grid", "optuna"),
        help="mlp: hyperparameter search (default: the preset's; off the preset's value gives a +hash protocol id)",
    )
    p.add_argument("--trials", type=int, metavar="N", help="mlp --search optuna: trial budget (default: the preset's)")
    p.add_argument(
        "--protocol",
        default="evalbench",
        help="protocol preset: evalbench (linear head solved to convergence, L2 chosen on validation), evar "
        "(the reference harness's linear evaluation, without our fixes) or hear (HEAR's MLP protocol); "
        "the record and the leaderboard carry its id (default: evalbench)",
    )
    p.add_argument("--seeds", default=None, help="seed count (42, 43, ...) or list (default: the preset's, 5)")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N (default: auto)")
    p.add_argument("--overwrite", action="store_true", help="recompute records that are up to date")
    add_extraction(p)
    p.add_argument(
        "--allow-contaminated",
        action="store_true",
        help="score an encoder on tasks whose test clips it was trained on (the record and leaderboard mark it)",
    )
    p.add_argument(
        "--skip-bad",
        action="store_true",
        help="leave out the clips that cannot be used (missing, undecodable, truncated, NaN/Inf...; silent clips "
        "stay) instead of stopping at the first; each one is named, the record (<task>.<probe>.skip-bad.json) "
        "lists them and the leaderboard marks the row",
    )
    p.add_argument(
        "--profile", action="store_true", help="print each pair's time per stage (decode, resample, encode, ...)"
    )
    add_compute(p)
    add_dirs(p, data=True, cache=True, results=True)
    p.set_defaults(handler=handle)


SUMMARY = "{written} record(s) written, {current} up to date; `evalbench leaderboard` regenerates the tables"


def _memo(args: argparse.Namespace) -> Path | None:
    """The up-to-date memo of this request (None for HEAR modules, whose code evalbench does not watch)."""
    from evalbench import paths
    from evalbench.results import uptodate

    if "hear:" in args.encoder:
        return None
    folders = {
        "data": [paths.data_root(args.data_root)],
        "cache": [paths.cache_root(args.cache_dir)],
        "results": [paths.results_dir(args.results_dir)],
        "tasks": paths.task_dirs(args.tasks_dir),  # the overlay: which folders exist changes name resolution
        "encoders": paths.encoder_dirs(args.encoders_dir),
    }
    options = {k: v for k, v in vars(args).items() if k not in ("handler", "overwrite", "profile")}
    key = uptodate.request_key(options, {k: [str(Path(v).resolve()) for v in vs] for k, vs in folders.items()})
    return uptodate.memo_path(folders["cache"][0], key)


def _inputs(args: argparse.Namespace, encoders: list, tasks: list, data_root: Path) -> Inputs:
    """What the verdicts of this run depend on (:class:`evalbench.results.uptodate.Inputs`)."""
    from evalbench import paths
    from evalbench.data.prepare import dataset_dir
    from evalbench.results.uptodate import Inputs

    inputs = Inputs(trees=[str(d) for d in (*paths.task_dirs(args.tasks_dir), *paths.encoder_dirs(args.encoders_dir))])
    for spec in encoders:
        inputs.files += [str(p) for p in (spec.source_path, spec.checkpoint_path(), spec.trained_on_path()) if p]
        external = spec.external_adapter()  # a one-file adapter may live outside every watched folder
        if external is not None:
            inputs.files.append(str(external.source))
    for task in tasks:
        inputs.files.append(task.source_path)
        inputs.add_dataset(dataset_dir(task, data_root))
    return inputs


def handle(args: argparse.Namespace) -> int:
    """Answer from the up-to-date memo, or resolve names and folders and call :func:`evalbench.runner.run`."""
    memo = None if args.overwrite else _memo(args)
    if memo is not None:
        from evalbench.results import uptodate

        lines = uptodate.check(memo)
        if lines is not None:
            for encoder, task, path in lines:
                say(f"{encoder} × {task}: up to date ({path}); --overwrite recomputes it")
            pairs = [(encoder, task, "up to date", path) for encoder, task, path in lines]
            if args.profile:
                print_profile(pairs)
            print_summary(pairs)
            return 0

    from evalbench import paths
    from evalbench.results import uptodate
    from evalbench.runner import RunConfig, run

    memo = memo or _memo(args)
    encoders, tasks = resolve_pipeline_args(args)
    cfg = RunConfig(
        data_root=paths.data_root(args.data_root),
        cache_dir=paths.cache_root(args.cache_dir),
        results_dir=paths.results_dir(args.results_dir),
        device=args.device,
        seeds=parse_seeds(args.seeds),
        probe=args.probe,
        probe_options=search_options(args),
        protocol=args.protocol,
        overwrite=args.overwrite,
        batch_size=args.batch_size,
        workers=args.workers,
        allow_contaminated=args.allow_contaminated,
        precision=args.precision,
        tf32=args.tf32,
        encoder_dirs=paths.encoder_dirs(args.encoders_dir),
        skip_bad=args.skip_bad,
    )
    main_rank = int(os.environ.get("RANK", "0")) == 0  # under torchrun, rank 0 alone reports
    inputs = _inputs(args, encoders, tasks, cfg.data_root) if memo is not None and main_rank else None
    before: dict = {}
    outcomes = run(encoders, tasks, cfg, on_preflight=lambda: before.update(inputs.observe() if inputs else {}))
    if not main_rank:
        return 0
    if memo is not None and inputs is not None:
        uptodate.write(memo, before, inputs, [(o.encoder, o.task, str(o.path)) for o in outcomes])
    pairs = [(o.encoder, o.task, o.status, o.path) for o in outcomes]
    if args.profile:
        print_profile(pairs)
    print_summary(pairs)
    return 0


def print_summary(pairs: list[tuple[str, str, str, str | Path]]) -> None:
    """The closing table of ``run``: each pair's primary test score, its 95 % interval and record status.

    Read back from the records just written or found up to date (plain JSON: the up-to-date path stays
    free of numpy and pandas).  Silent under ``--quiet``, like every status line.
    """
    import json

    from tabulate import tabulate

    if console.level() == "quiet":
        return
    rows = []
    for encoder, task, status, path in pairs:
        try:
            record = json.loads(Path(path).read_text(encoding="utf-8"))
            metric = record["task"]["primary_metric"]
            score = record["scores"]["test"][metric]
        except (OSError, ValueError, KeyError, TypeError):
            rows.append([encoder, task, "—", None, None, None, status])
            continue
        ci = score.get("ci95") or {}
        interval = f"[{ci['low']:.4f}, {ci['high']:.4f}]" if "low" in ci and "high" in ci else None
        excluded = (record.get("excluded") or {}).get("count")
        shown = f"{status}, {excluded} clip(s) excluded (--skip-bad)" if excluded else status
        rows.append([encoder, task, metric, score.get("mean"), score.get("std"), interval, shown])
    headers = ["encoder", "task", "metric", "test", "± std (seeds)", "95% CI", "record"]
    say(tabulate(rows, headers=headers, floatfmt=".4f", missingval="—"))
    written = sum(status == "written" for *_, status, _ in pairs)
    say(SUMMARY.format(written=written, current=len(pairs) - written))


def print_profile(pairs: list[tuple[str, str, str, str | Path]]) -> None:
    """Seconds per stage of every ``(encoder, task, status, record path)`` (an up-to-date pair: its recorded run)."""
    import json

    from tabulate import tabulate

    stages = ("fit", "load_wait", "decode", "resample", "encode", "pool", "cache_write", "probe")
    rows = []
    for encoder, task, status, path in pairs:
        try:
            timings = json.loads(Path(path).read_text(encoding="utf-8")).get("timings", {})
        except (OSError, ValueError):
            continue
        per = timings.get("stages_s", {})
        rows.append([encoder, task, status, *(per.get(s) for s in stages), timings.get("extract_s")])
    headers = ["encoder", "task", "record", *(f"{s} s" for s in stages), "extract s"]
    print(tabulate(rows, headers=headers, floatfmt=".2f", missingval="—"))
    print(
        "decode/resample: summed over clips in whichever process decoded them (with --workers they overlap the "
        "encoder); load_wait: time spent waiting for decoded batches; extract: the whole extraction"
    )
