"""``evalbench pretrain METHOD``: train an encoder and register it for ``evalbench run``.

With no other argument it trains on the embedded synthetic corpus with the
recipe's ``paper`` preset; ``--preset smoke`` takes a few minutes on 2 CPU
cores.  Rerunning the same command resumes from the last checkpoint.  Under
``torchrun`` every process runs this same command.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from evalbench.cli.common import add_dirs
from evalbench.errors import EvalbenchError
from evalbench.utils.console import say


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Register the subcommand."""
    p = sub.add_parser("pretrain", help="pretrain an encoder (byola, ...) and register it", description=__doc__)
    p.add_argument("method", help="pretraining method (a recipe in encoders/recipes/<method>.yaml)")
    p.add_argument("--preset", default="paper", help="recipe preset: paper (published hyperparameters) or smoke")
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a recipe field, e.g. --set train.optimizer.lr=1e-4 --set options.version=v1 (repeatable)",
    )
    p.add_argument("--arch", help="supervised: the network (cnn, vgg, lstm, crnn, kumar); sets options.arch")
    p.add_argument("--steps", type=int, help="optimiser steps (overrides epochs)")
    p.add_argument("--epochs", type=int, help="passes over the data")
    p.add_argument("--batch-size", type=int, help="global batch size")
    p.add_argument("--workers", type=int, help="decoding worker processes")
    src = p.add_mutually_exclusive_group()
    src.add_argument("--data", type=Path, help="a folder of audio files (searched recursively)")
    src.add_argument("--task", help="a prepared task: its training split only (k-fold tasks: with --fold)")
    p.add_argument("--fold", type=int, help="with a k-fold --task: the held-out fold (never trained on)")
    p.add_argument("--name", help="encoder name to register (default: <method>-<preset>)")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N (default: auto)")
    p.add_argument("--restart", action="store_true", help="ignore an existing checkpoint and start over")
    p.add_argument("--recipes-dir", type=Path, help="recipe folder (default: <encoders-dir>/recipes)")
    p.add_argument(
        "--export-format",
        choices=("pt", "safetensors"),
        default="pt",
        help="weights file the encoder YAML registers: pt (encoder.pt) or safetensors (also writes "
        "encoder.safetensors, loaded without any pickle; default: pt)",
    )
    p.add_argument(
        "--monitor",
        metavar="TASK",
        help="score the encoder every train.monitor_every steps with a kNN probe on TASK's train/valid split "
        "(never test); curve in monitor.png",
    )
    add_dirs(p, data=True, cache=True)
    p.set_defaults(handler=handle)


def overrides(args: argparse.Namespace) -> list[dict]:
    """The ``--set`` pairs and dedicated flags as override layers (flags last, so they win)."""
    from evalbench.specs.recipe import parse_assignment

    layers = [parse_assignment(text) for text in args.set]
    train = {
        key: value
        for key, value in (("steps", args.steps), ("epochs", args.epochs), ("batch_size", args.batch_size))
        if value is not None
    }
    if args.workers is not None:
        train["workers"] = args.workers
    if train:
        layers.append({"train": train})
    if args.arch is not None:
        layers.append({"options": {"arch": args.arch}})
    return layers


def recipes_dir(method: str, encoder_dirs: list[Path]) -> Path:
    """The ``recipes`` folder defining ``method``: the highest-priority encoders folder holding it, else built-in."""
    for folder in reversed(encoder_dirs):
        if (folder / "recipes" / f"{method}.yaml").is_file():
            return folder / "recipes"
    return encoder_dirs[0] / "recipes"


def handle(args: argparse.Namespace) -> int:
    """Build the job and run it; print the command that scores the result."""
    from evalbench import paths
    from evalbench.pretrain.run import PretrainJob, command_line, pretrain

    for flag in ("steps", "epochs", "batch_size", "workers"):
        value = getattr(args, flag)
        if value is not None and value < (0 if flag == "workers" else 1):
            raise EvalbenchError(f"--{flag.replace('_', '-')} {value}: must be a positive integer")
    encoders_dir = paths.user_encoders_dir(args.encoders_dir)  # registered here, never inside the package
    encoders_dir.mkdir(parents=True, exist_ok=True)
    job = PretrainJob(
        method=args.method,
        recipes_dir=args.recipes_dir or recipes_dir(args.method, paths.encoder_dirs(args.encoders_dir)),
        data_root=paths.data_root(args.data_root),
        cache_dir=paths.cache_root(args.cache_dir),
        encoders_dir=encoders_dir,
        tasks_dir=paths.task_dirs(args.tasks_dir),
        preset=args.preset,
        overrides=overrides(args),
        data=args.data,
        task=args.task,
        fold=args.fold,
        name=args.name,
        device=args.device,
        restart=args.restart,
        monitor=args.monitor,
        export_format=args.export_format,
        command=command_line(sys.argv[1:] if sys.argv[1:2] == ["pretrain"] else ["pretrain", args.method]),
    )
    result = pretrain(job)
    if result.main:
        from evalbench.pretrain.export import INIT, TWIN_SUFFIX

        twin = result.name + TWIN_SUFFIX if (result.out_dir / INIT).is_file() else None
        pair = f"{result.name},{twin}" if twin else result.name
        say(f"score it: evalbench run --encoder {pair} --tasks synth")
    return 0
