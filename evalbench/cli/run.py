"""``evalbench run``: score encoders on tasks and write run records.

``--encoder`` takes encoder names from ``encoders/`` and ``hear:<module>[:<weights>]``
for any installed HEAR-API module.  ``--checkpoint PATH`` scores another weights
file of one encoder's family without writing YAML; its records go to
``results/<encoder>@<file stem>-<sha256[:8]>/`` and carry the file's SHA-256.
"""

from __future__ import annotations

import argparse

from evalbench.cli.common import add_dirs, resolve_pipeline_args
from evalbench.errors import EvalbenchError


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
        metavar="PATH",
        help="score this weights file with the (single) encoder's family (results: <encoder>@<stem>-<sha256[:8]>)",
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
    p.add_argument("--batch-size", type=int, default=32, help="extraction batch size (does not change results)")
    p.add_argument("--workers", type=int, default=0, help="decoding worker processes (default: 0, in-process)")
    p.add_argument(
        "--allow-contaminated",
        action="store_true",
        help="score an encoder on tasks whose test clips it was trained on (the record and leaderboard mark it)",
    )
    add_dirs(p, data=True, cache=True, results=True)
    p.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    """Resolve names and folders, then call :func:`evalbench.evaluate.run`."""
    from evalbench import paths
    from evalbench.evaluate import RunConfig, run

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
    )
    outcomes = run(encoders, tasks, cfg)
    written = sum(o.status == "written" for o in outcomes)
    print(
        f"{written} record(s) written, {len(outcomes) - written} up to date; "
        "`evalbench leaderboard` regenerates the tables"
    )
    return 0
