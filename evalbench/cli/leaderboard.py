"""``evalbench leaderboard``: regenerate results/leaderboard.{md,csv,png} from run records."""

from __future__ import annotations

import argparse

from evalbench.cli.common import add_dirs


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Register the subcommand."""
    p = sub.add_parser("leaderboard", help="regenerate the leaderboard from run records", description=__doc__)
    add_dirs(p, results=True, specs=False)
    p.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    """Write the leaderboard files and print their paths."""
    from evalbench import paths
    from evalbench.results.tables import write_leaderboard

    for path in write_leaderboard(paths.results_dir(args.results_dir)):
        print(f"wrote {path}")
    return 0
