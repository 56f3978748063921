"""``evalbench encoders list|show|validate``: the encoder catalog (never imports torch)."""

from __future__ import annotations

import argparse

import yaml
from tabulate import tabulate

from evalbench.cli.common import add_catalog
from evalbench.errors import EvalbenchError, SpecError


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Register the subcommand."""
    add_catalog(sub, "encoder", __doc__, handle)


def handle(args: argparse.Namespace) -> int:
    """Dispatch the action."""
    from evalbench import paths
    from evalbench.specs.encoder import encoder_files, load_encoder, parse_encoder_file
    from evalbench.specs.fields import to_dict

    encoders_dir = paths.encoders_dir(args.encoders_dir)
    if args.action == "list":
        rows = []
        for path in encoder_files(encoders_dir):
            try:
                e = parse_encoder_file(path)
                ckpt = e.checkpoint.path if e.checkpoint else "-"
                rows.append([e.name, e.adapter, e.pooling, ckpt, e.description])
            except SpecError as exc:
                rows.append([path.stem, "INVALID", "", "", str(exc)])
        print(tabulate(rows, headers=["encoder", "adapter", "pooling", "checkpoint", "description"]))
        return 0
    if args.action == "show":
        spec = load_encoder(args.name, encoders_dir)
        print(f"# {spec.source_path}  (spec sha256 {spec.sha256[:16]})")
        data = to_dict(spec)
        data["options"] = to_dict(spec.typed_options())
        print(yaml.safe_dump(data, sort_keys=False, allow_unicode=True).rstrip())
        return 0
    errors = []
    for path in args.files or encoder_files(encoders_dir):
        try:
            parse_encoder_file(path)
        except SpecError as exc:
            errors.append(str(exc))
    for e in errors:
        print(f"INVALID {e}")
    if errors:
        raise EvalbenchError(f"{len(errors)} invalid encoder spec(s); see above")
    print(f"all encoder specs in {encoders_dir} are valid" if not args.files else "all given specs are valid")
    return 0
