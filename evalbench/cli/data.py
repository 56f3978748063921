"""``evalbench data prepare``: turn a dataset's distribution into canonical metadata."""

from __future__ import annotations

import argparse
from pathlib import Path

from evalbench.cli.common import add_dirs


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Register the subcommand."""
    p = sub.add_parser("data", help="prepare datasets", description=__doc__)
    actions = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    prep = actions.add_parser("prepare", help="prepare a task's dataset under the data root")
    prep.add_argument("task")
    prep.add_argument("--source", type=Path, help="folder holding the official distribution")
    prep.add_argument("--force", action="store_true", help="rebuild even if the source is unchanged")
    add_dirs(prep, data=True)
    prep.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    """Prepare the dataset and report what happened."""
    from evalbench import paths
    from evalbench.data.prepare import prepare
    from evalbench.specs.task import load_task

    task = load_task(args.task, paths.tasks_dir(args.tasks_dir))
    dataset, built = prepare(task, paths.data_root(args.data_root), args.source, force=args.force)
    state = "prepared" if built else "already prepared (source unchanged; --force rebuilds)"
    print(f"{task.name}: dataset '{task.dataset_name}' {state}: {len(dataset.metadata)} clips in {dataset.root}")
    return 0
