"""``evalbench data download|prepare|verify``: obtain, prepare and check a task's dataset.

``download`` fetches the files listed in the task spec's ``dataset.source``
(resuming interrupted transfers, checking SHA-256), unpacks them under
``<data_root>/sources/`` and prepares the dataset.  ``prepare`` does the last
step from a copy already on disk.  ``verify`` decodes every clip and lists each
problem file; it exits non-zero if there is any.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING, Any

from evalbench.cli.common import add_dirs
from evalbench.cli.data_import import add_import_parser
from evalbench.errors import EvalbenchError
from evalbench.utils.console import say

if TYPE_CHECKING:
    from evalbench.specs.task import TaskSpec

EPILOG = """examples:
  evalbench data download esc50                 fetch, check, unpack and prepare ESC-50
  evalbench data prepare vc1 --source ~/vox1    prepare a dataset fetched by hand
  evalbench data prepare surge --source ~/surge --split-file dataset_surge_tone_splits.csv
                                                the reference's published tone split, not the seeded one
  evalbench data verify gtzan                   decode every clip, list problem files and class counts
"""


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Register the subcommand."""
    p = sub.add_parser(
        "data",
        help="download, prepare and verify datasets",
        description=__doc__,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    actions = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    down = actions.add_parser("download", help="download, check, unpack and prepare a task's dataset")
    down.add_argument("task")
    down.add_argument("--force", action="store_true", help="fetch, unpack and prepare again")
    prep = actions.add_parser("prepare", help="prepare a task's dataset under the data root")
    prep.add_argument("task")
    prep.add_argument("--source", type=Path, help="folder holding the official distribution")
    prep.add_argument("--force", action="store_true", help="rebuild even if the source is unchanged")
    prep.add_argument(
        "--split-file",
        type=Path,
        metavar="FILE",
        help="use the reference harness's published split read from FILE instead of the seeded rule "
        "(surge: CSV tone,split; cremad: CSV file_name,split or actor,split); recorded in dataset.json",
    )
    ver = actions.add_parser("verify", help="decode every clip of a prepared dataset and report problems")
    ver.add_argument("task")
    for q in (down, prep, ver):
        add_dirs(q, data=True)
        q.set_defaults(handler=handle)
    add_import_parser(actions)  # `data import DIR --name NAME`: its own handler


def print_exclusions(excluded: list[dict[str, Any]]) -> None:
    """Print the spec's known-bad files removed at prepare time (``excluded`` in ``dataset.json``)."""
    if not excluded:
        return
    print("known-bad files excluded by the spec:")
    for e in excluded:
        print(f"  {e['file']}: {e['reason']} ({e['rows_removed']} row(s) removed)")


def handle(args: argparse.Namespace) -> int:
    """Dispatch the action."""
    from evalbench import paths
    from evalbench.specs.task import load_task

    task = load_task(args.task, paths.task_dirs(args.tasks_dir))
    data_root = paths.data_root(args.data_root)
    if args.action == "verify":
        return _verify(task, data_root)
    from evalbench.data.prepare import dataset_dir, prepare

    if args.action == "download":
        from evalbench.data.download import download_task
        from evalbench.data.metadata import read_prepared

        root = download_task(task, data_root, force=args.force)
        dataset = read_prepared(dataset_dir(task, data_root))
        say(f"{task.name}: official layout in {root}")
        state = "prepared"
    else:
        if getattr(args, "split_file", None) is not None:
            from evalbench.data.datasets._common import with_split_file

            task = with_split_file(task, args.split_file)
        dataset, built = prepare(task, data_root, args.source, force=args.force)
        state = "prepared" if built else "already prepared (source unchanged; --force rebuilds)"
    say(f"{task.name}: dataset '{task.dataset_name}' {state}: {len(dataset.metadata)} clips in {dataset.root}")
    print_exclusions(dataset.info.get("excluded", []))
    return 0


def _verify(task: TaskSpec, data_root: Path) -> int:
    """Print one line per problem file, the exclusions and the class counts; fail if any problem."""
    from tabulate import tabulate

    from evalbench.data.verify import verify_task

    report = verify_task(task, data_root)
    for p in report.problems:
        print(f"{p.kind} {p.path}: {p.detail}")
    print_exclusions(report.excluded)
    if report.counts is not None:
        print(tabulate(report.counts.reset_index(names="class"), headers="keys", showindex=False))
    if report.problems:
        raise EvalbenchError(f"{len(report.problems)} problem file(s) in {task.name}; see above")
    say(f"{task.name}: all {report.n_files} files decode cleanly")
    return 0
