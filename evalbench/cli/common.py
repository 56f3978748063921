"""Arguments shared by several subcommands."""

from __future__ import annotations

import argparse
from pathlib import Path


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
