"""``evalbench leaderboard``: regenerate results/leaderboard.{md,csv,png} from run records.

The Markdown has one table per protocol and declared suite (tasks/suites/*.yaml), each averaged over exactly
that suite's tasks; tasks in no suite are listed without an average.  With --significance, each column's best
mean is bold and the cells whose difference from it is not significant (paired bootstrap over the same test
clips, 1,000 resamples, 95 %) carry ≈; records without a predictions sidecar are not tested.  With
--with-published, numbers published by others (results/published.yaml, or --published FILE) follow in sections
of their own, one per published protocol, labelled as published and never averaged.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from evalbench.cli.common import add_dirs
from evalbench.utils.console import say


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Register the subcommand."""
    p = sub.add_parser("leaderboard", help="regenerate the leaderboard from run records", description=__doc__)
    add_dirs(p, results=True, specs=False)
    p.add_argument("--tasks-dir", help="task specs whose suites/*.yaml define the tables (default: <project>/tasks)")
    p.add_argument(
        "--ci", action="store_true", help="show the 95%% bootstrap interval [low, high] where a record has one"
    )
    p.add_argument(
        "--plot", action="store_true", help="also write one leaderboard-[<protocol>-]<suite>.png per suite table"
    )
    p.add_argument(
        "--significance",
        action="store_true",
        help="bold each column's best and mark ≈ the cells not significantly different from it (paired bootstrap "
        "over test clips; costs 1,000 metric evaluations per compared run, seconds on the synthetic suite)",
    )
    p.add_argument(
        "--with-published",
        action="store_true",
        help="append published numbers (<results-dir>/published.yaml) in their own sections, never averaged",
    )
    p.add_argument(
        "--published", metavar="FILE", help="published-numbers file to append instead (implies --with-published)"
    )
    p.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    """Write the leaderboard files and print their paths."""
    from evalbench import paths
    from evalbench.results.tables import write_leaderboard

    results = paths.results_dir(args.results_dir)
    published = Path(args.published).expanduser() if args.published else None
    written = write_leaderboard(
        results,
        paths.task_dirs(args.tasks_dir),
        ci=args.ci,
        plot=args.plot,
        with_published=args.with_published or published is not None,
        published_path=published,
        significance=args.significance,
    )
    for path in written:
        say(f"wrote {path}")
    return 0
