"""Arguments shared by several subcommands."""

from __future__ import annotations

import argparse
from pathlib import Path

from evalbench.errors import EvalbenchError


def add_catalog(sub: argparse._SubParsersAction, kind: str, description: str, handler) -> argparse._SubParsersAction:
    """Add ``<kind>s list|show NAME|validate [FILES]`` with spec-folder options.

    Returns:
        The action subparsers, so a subcommand can add more actions (``tasks catalog``).
    """
    p = sub.add_parser(f"{kind}s", help=f"list, show or validate {kind} specs", description=description)
    actions = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    show = actions.add_parser("show", help=f"the resolved spec of a {kind}")
    show.add_argument("name")
    val = actions.add_parser("validate", help=f"check every {kind} spec (or the given files)")
    val.add_argument("files", nargs="*", type=Path)
    for q in (actions.add_parser("list", help=f"one line per {kind}"), show, val):
        add_dirs(q, specs=True)
        q.set_defaults(handler=handler)
    return actions


def add_dirs(
    parser: argparse.ArgumentParser,
    *,
    data: bool = False,
    cache: bool = False,
    results: bool = False,
    specs: bool = True,
) -> None:
    """Add the folder options a subcommand needs."""
    if data:
        parser.add_argument("--data-root", help="prepared datasets (default: $EVALBENCH_DATA or the user cache)")
    if cache:
        parser.add_argument("--cache-dir", help="embedding cache (default: $EVALBENCH_CACHE or the user cache)")
    if results:
        parser.add_argument("--results-dir", help="run records and leaderboards (default: <project>/results)")
    if specs:
        parser.add_argument("--tasks-dir", help="task specs (default: <project>/tasks)")
        parser.add_argument("--encoders-dir", help="encoder specs (default: <project>/encoders)")


def add_extraction(parser: argparse.ArgumentParser) -> None:
    """``--batch-size`` and ``--workers`` (``run``, ``embed``; neither changes results)."""
    parser.add_argument("--batch-size", type=int, default=32, help="extraction batch size (does not change results)")
    parser.add_argument(
        "--workers",
        type=workers_arg,
        default=None,
        metavar="N|auto",
        help="decoding worker processes (default: auto: none on CPU, where decoding would take cores from the "
        "encoder; up to 4 on CUDA)",
    )


def workers_arg(value: str) -> int | None:
    """``--workers``: ``auto`` (None) or a count >= 0."""
    if value == "auto":
        return None
    try:
        count = int(value)
    except ValueError:
        count = -1
    if count < 0:
        raise argparse.ArgumentTypeError(f"{value!r}: give a number of worker processes >= 0, or auto")
    return count


def add_compute(parser: argparse.ArgumentParser) -> None:
    """``--precision`` and ``--tf32`` (``run``, ``embed``; :mod:`evalbench.utils.precision`)."""
    parser.add_argument(
        "--precision",
        default="fp32",
        choices=("fp32", "bf16", "fp16"),
        help="extraction precision: autocast at bf16/fp16 (fp16: CUDA only), refused when a check batch moves "
        "embeddings more than 1%% from fp32; part of the cache key and record (default: fp32)",
    )
    parser.add_argument(
        "--tf32", action="store_true", help="allow TF32 matmuls and convolutions on CUDA (default: off, recorded)"
    )


def resolve_pipeline_args(args: argparse.Namespace) -> tuple[list, list]:
    """The encoder and task specs named by ``--encoder``/``--checkpoint``/``--tasks`` (``run``, ``embed``).

    ``--checkpoint PATH`` swaps the weights of the one encoder;
    ``--checkpoint NAME=PATH[,NAME=PATH...]`` those of the named encoders
    among several (:func:`~evalbench.specs.checkpoint_flag.parse_checkpoint_flag`).

    Raises:
        EvalbenchError: Bad ``--batch-size``, unknown names, a plain
            ``--checkpoint`` path with several encoders, plain and named parts
            mixed, a name not among the encoders, or a missing file.
    """
    from evalbench import paths
    from evalbench.specs.checkpoint_flag import apply_checkpoint_flag
    from evalbench.specs.encoder import resolve_encoders
    from evalbench.specs.task import resolve_tasks

    if args.batch_size < 1:
        raise EvalbenchError(f"--batch-size {args.batch_size}: must be >= 1")
    encoders = resolve_encoders(args.encoder, paths.encoder_dirs(args.encoders_dir))
    if args.checkpoint is not None:
        given = list(dict.fromkeys(n.strip() for n in args.encoder.split(",") if n.strip()))
        if len(given) != len(encoders):
            given = [e.name for e in encoders]
        encoders = apply_checkpoint_flag(encoders, given, args.checkpoint)
    return encoders, resolve_tasks(args.tasks, paths.task_dirs(args.tasks_dir))
