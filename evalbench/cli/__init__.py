"""The ``evalbench`` command line: thin argparse subcommands over library functions.

Every subcommand module exposes ``add_parser(subparsers)``; its handler parses
nothing itself and calls a public library function.  User mistakes surface as
one ``evalbench: error: ...`` line and exit status 2, never a traceback.
"""

from __future__ import annotations

import argparse
import sys

from evalbench import __version__
from evalbench.cli import bench, data, embed, encoders, leaderboard, pretrain, run, tasks
from evalbench.errors import EvalbenchError

EPILOG = """examples:
  evalbench run --encoder logmel --tasks synth            the embedded synthetic suite
  evalbench run --encoder byola --tasks esc50,gtzan,nsynth
  evalbench run --encoder byola --checkpoint my.pth --tasks evar9
  evalbench run --encoder hear:my_module --tasks synth    any installed HEAR-API module
  evalbench embed --encoder msn --tasks esc50 --out emb   clip embeddings to emb/esc50.npz
  evalbench data download esc50                           fetch, check, unpack, prepare
  evalbench pretrain byola --preset smoke                 train an encoder, register it for `run`
  evalbench leaderboard                                   regenerate results/leaderboard.*
  evalbench tasks list                                    the task catalog
  evalbench encoders validate                             check every encoders/*.yaml
"""


def build_parser() -> argparse.ArgumentParser:
    """The top-level parser with all subcommands."""
    parser = argparse.ArgumentParser(
        prog="evalbench",
        description="Benchmark harness for frozen audio representations.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"evalbench {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for module in (run, embed, pretrain, leaderboard, tasks, encoders, data, bench):
        module.add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; returns the process exit status."""
    args = build_parser().parse_args(argv)
    try:
        return int(args.handler(args) or 0)
    except EvalbenchError as exc:
        print(f"evalbench: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(
            "evalbench: interrupted; finished records and cache entries are kept, nothing partial was written",
            file=sys.stderr,
        )
        return 130
