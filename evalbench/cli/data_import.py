"""``evalbench data import DIR --name NAME``: a folder of labelled audio becomes a task, in one command.

Labels come from class-named subfolders (``DIR/<label>/.../*.wav``, the
default), from a regex on each file's path relative to DIR (``--label-from``;
the first capture group), or from a CSV (``--csv FILE``).  ``--group-from`` /
``--group-col`` name the speaker, actor or source recording, which is kept on
one side of every split.  The default split is a fixed train/valid/test of
70/10/20 %; ``--folds K`` makes K folds instead; both are grouped and
stratified by label, from a seed.  Audio is read in place (never copied); the
metadata goes to the data root and the task spec to the tasks folder
(``--tasks-dir``, ``$EVALBENCH_TASKS_DIR`` or ``./tasks``), where it is validated.
"""

from __future__ import annotations

import argparse
import shlex
from pathlib import Path

from evalbench.utils.console import say

EPILOG = r"""examples:
  evalbench data import ~/emotions --name emo
      ~/emotions/<label>/*.wav; a 70/10/20 split stratified by label
  evalbench data import ~/ravdess --name ravdess --folds 5 \
      --label-from '/\d\d-\d\d-(\d\d)-' --group-from 'Actor_(\d+)/'
      emotion code from the file name, 5 folds with each actor in one fold
  evalbench data import ~/clips --name birds --csv ~/clips/meta.csv --label-col species --group-col site
"""


def add_import_parser(actions: argparse._SubParsersAction) -> None:
    """Register ``data import`` under the ``data`` subcommand's actions."""
    from evalbench.cli.common import add_dirs

    p = actions.add_parser(
        "import",
        help="make a task from a folder of labelled audio (subfolders per class, a path regex, or a CSV)",
        description=__doc__,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("source", metavar="DIR", type=Path, help="folder holding the audio (searched recursively)")
    p.add_argument("--name", required=True, help="name of the new task and of its dataset")
    where = p.add_argument_group("labels and groups (default: labels = the first subfolder under DIR)")
    for field, what in (("label", "class"), ("group", "speaker/actor/recording kept on one side of a split")):
        where.add_argument(f"--{field}-from", metavar="REGEX", help=f"{what}: first capture group of REGEX searched "
                           "in each path relative to DIR ('/'-separated)")  # fmt: skip
    where.add_argument("--csv", type=Path, metavar="FILE", help="table with one row per clip")
    where.add_argument("--file-col", metavar="COL", help="its column of file paths (default: file_name, filename, ...)")
    where.add_argument("--label-col", metavar="COL", help="its column of labels (default: label, class, category, ...)")
    where.add_argument("--group-col", metavar="COL", help="its column of groups (default: no groups)")
    split = p.add_argument_group("split (default: train/valid/test 70/10/20 %, grouped, stratified)")
    split.add_argument("--folds", type=int, metavar="K", help="K folds instead of a fixed split")
    # NOTE: the default lives in evalbench.data.import_splits, which imports numpy: not imported to build --help
    split.add_argument("--split-fractions", metavar="T/V/T", help="train/valid/test percentages (default: 70/10/20)")
    split.add_argument("--seed", type=int, default=0, help="seed of the generated split (default: 0)")
    for field in ("split", "fold"):
        split.add_argument(f"--{field}-from", metavar="REGEX", help=f"keep the data's own {field}s, from the path")
        split.add_argument(f"--{field}-col", metavar="COL", help=f"keep the data's own {field}s, from a CSV column")
    p.add_argument("--exclude", metavar="REGEX", help="leave out files whose path (relative to DIR) matches")
    p.add_argument("--clip-seconds", type=float, metavar="S", help="the task's clip length (default: 95th pct.)")
    p.add_argument("--force", action="store_true", help="replace an earlier import, or override a built-in task")
    add_dirs(p, data=True, specs=False)
    p.add_argument("--tasks-dir", help="where the task spec is written (default: $EVALBENCH_TASKS_DIR or ./tasks)")
    p.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    """Import, then print what was written and the command that runs the new task."""
    from evalbench import paths
    from evalbench.data.import_splits import DEFAULT_FRACTIONS
    from evalbench.data.importer import ImportOptions, import_folder

    opts = ImportOptions(
        source=args.source,
        name=args.name,
        **{k: getattr(args, k) for k in ("label_from", "group_from", "split_from", "fold_from", "csv")},
        **{k: getattr(args, k) for k in ("file_col", "label_col", "group_col", "split_col", "fold_col", "folds")},
        split_fractions=args.split_fractions or DEFAULT_FRACTIONS,
        seed=args.seed,
        exclude=args.exclude,
        clip_seconds=args.clip_seconds,
        force=args.force,
    )
    done = import_folder(opts, paths.data_root(args.data_root), paths.user_tasks_dir(args.tasks_dir))
    table, column = done.table, "fold" if "fold" in done.table.columns else "split"
    counts = table[column].value_counts()
    order = sorted(counts.index, key=lambda v: ("train", "valid", "test").index(v) if column == "split" else v)
    groups = f", {table['group'].nunique()} groups" if "group" in table.columns else ""
    say(f"imported '{done.name}' (version {done.version}): {len(table)} clips, {len(done.classes)} classes{groups}")
    say(f"  classes:  {', '.join(done.classes[:12])}{', ...' if len(done.classes) > 12 else ''}")
    say(f"  split:    {done.split_rule}")
    sizes = [f"fold {v}: {counts[v]}" if column == "fold" else f"{v} {counts[v]}" for v in order]
    say(f"            {', '.join(sizes)}")
    say(f"  clip:     {done.clip_seconds:g} s ({done.unit_rule})")
    say(f"  dataset:  {done.dataset_dir} (metadata.csv; audio read in place)")
    say(f"  task:     {done.spec_path} (valid)")
    for note in done.notes:
        say(f"  note:     {note}")
    command = ["evalbench", "run", "--encoder", "logmel", "--tasks", done.name]
    for flag, value in (("--tasks-dir", args.tasks_dir), ("--data-root", args.data_root)):
        if value:
            command += [flag, str(Path(value).expanduser().resolve())]
    say("run it (logmel is the baseline; any encoder of `evalbench encoders list` works):")
    say("  " + " ".join(shlex.quote(c) for c in command))
    return 0
