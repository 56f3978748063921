"""The ``evalbench`` command line: thin argparse subcommands over library functions.

Every subcommand module exposes ``add_parser(subparsers)``; its handler parses
nothing itself and calls a public library function.  User mistakes surface as
one ``evalbench: error: ...`` line and exit status 2, never a traceback.  Every
command takes ``--quiet`` / ``--verbose`` (:mod:`evalbench.utils.console`), and
output piped into a reader that stops early (``evalbench tasks list | head``)
ends quietly with the shell's SIGPIPE status, 141.
"""

from __future__ import annotations

import argparse
import os
import sys

from evalbench import __version__
from evalbench.cli import bench, data, embed, encoders, leaderboard, pretrain, run, tasks
from evalbench.errors import EvalbenchError
from evalbench.utils import console

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
    _add_verbosity(parser)
    return parser


def _add_verbosity(parser: argparse.ArgumentParser) -> None:
    """``-q/--quiet`` and ``-v/--verbose`` on this parser and every (sub)command below it.

    Accepted anywhere on the line (``evalbench -q run ...`` and ``evalbench run ... -q``); the
    innermost parser's default does not overwrite a flag given earlier (``SUPPRESS``).
    """
    group = parser.add_mutually_exclusive_group()
    group.add_argument(
        "-q", "--quiet", action="store_true", default=argparse.SUPPRESS, help="errors only: no progress, no status"
    )
    group.add_argument(
        "-v", "--verbose", action="store_true", default=argparse.SUPPRESS, help="also evalbench's debug log on stderr"
    )
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for child in dict.fromkeys(action.choices.values()):  # aliases map to the same parser
                _add_verbosity(child)


def _verbosity(args: argparse.Namespace) -> console.Level:
    quiet, verbose = getattr(args, "quiet", False), getattr(args, "verbose", False)
    if quiet and verbose:
        raise EvalbenchError("--quiet and --verbose contradict each other; give one")
    return "quiet" if quiet else "verbose" if verbose else "normal"


def _stdout_gone() -> int:
    """The reader of stdout went away (``| head``): stop without a traceback, as ``cat`` would."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())  # the interpreter's final flush must not fail again
    except (OSError, ValueError):
        pass
    return 141


def one_line(exc: EvalbenchError) -> str:
    """The message of ``exc`` as one line, also when PyTorch re-raised it from a DataLoader worker.

    PyTorch re-raises a worker's exception as ``type(exc)(text)`` with text
    ``Caught X in DataLoader worker process N.``, then ``Original Traceback ...``
    lines ending in ``module.X: <message>``; the traceback is noise to the user (the error is
    theirs to fix, not a bug), so only the original message is kept, after any
    prefix added on the way up (e.g. the encoder × task pair).
    """
    text = str(exc)
    caught = text.find("Caught ")
    if caught < 0 or "\nOriginal Traceback" not in text:
        return text
    last = text.rstrip().splitlines()[-1]
    head, sep, message = last.partition(": ")
    return text[:caught] + (message if sep and head.rpartition(".")[2] == type(exc).__name__ else last)


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; returns the process exit status."""
    args = build_parser().parse_args(argv)
    try:
        console.configure(_verbosity(args))
        status = int(args.handler(args) or 0)
        sys.stdout.flush()  # a closed pipe shows here, not at interpreter exit
        return status
    except BrokenPipeError:
        return _stdout_gone()
    except EvalbenchError as exc:
        print(f"evalbench: error: {one_line(exc)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(
            "evalbench: interrupted; finished records and cache entries are kept, nothing partial was written",
            file=sys.stderr,
        )
        return 130
    finally:
        console.configure("normal")  # the verbosity is this command's, not the process's (tests call main())
