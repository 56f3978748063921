"""``evalbench encoders list|show|validate|check``: the encoder catalog.

``list``, ``show`` and ``validate`` never import torch (unless a spec names a
one-file adapter, whose file they load).  ``check hear:<module>[:<weights>]``
runs the HEAR conformance check (docs/protocol.md §5) on a module, prints one
PASS / FAIL / WARN line per check, and exits with status 1 if any check fails.
"""

from __future__ import annotations

import argparse

from evalbench.cli.common import add_catalog
from evalbench.errors import EvalbenchError, SpecError
from evalbench.utils.console import say


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Register the subcommand."""
    actions = add_catalog(sub, "encoder", __doc__, handle)
    check = actions.add_parser(
        "check",
        help="run the HEAR conformance check on hear:<module>[:<weights>]",
        description="Run the HEAR conformance check (docs/protocol.md §5) and print each check; exit 1 on a failure.",
    )
    check.add_argument("name", metavar="hear:MODULE[:WEIGHTS]")
    check.set_defaults(handler=handle)


def check_module(name: str) -> int:
    """Print the conformance checks of ``hear:<module>[:<weights>]``; 0 if all pass, 1 otherwise."""
    from evalbench.adapters.hear import conformance_check
    from evalbench.adapters.options.hear import is_hear_name, parse_hear_name

    if not is_hear_name(name):
        raise EvalbenchError(f"encoders check {name}: give a HEAR module as hear:<module>[:<weights path>]")
    module, weights = parse_hear_name(name)
    checks = conformance_check(module, weights)
    for c in checks:
        print(f"{c.status.upper():4}  {c.name}{f': {c.detail}' if c.detail else ''}")
    failed = sum(c.status == "fail" for c in checks)
    warned = sum(c.status == "warn" for c in checks)
    verdict = f"{failed} check(s) failed" if failed else "conforms to the HEAR API"
    print(f"hear:{module}: {verdict} ({len(checks)} checks, {warned} warning(s))")
    return 1 if failed else 0


def handle(args: argparse.Namespace) -> int:
    """Dispatch the action."""
    import yaml
    from tabulate import tabulate

    from evalbench import paths
    from evalbench.specs.catalog import origin, overridden
    from evalbench.specs.encoder import encoder_files, load_encoder, parse_encoder_file
    from evalbench.specs.fields import to_dict

    if args.action == "check":
        return check_module(args.name)
    encoders_dir = paths.encoder_dirs(args.encoders_dir)
    if args.action == "list":
        rows = []
        hidden = overridden(encoders_dir)
        for path in encoder_files(encoders_dir):
            source = origin(path) + (f" (overrides {origin(hidden[path.stem])})" if path.stem in hidden else "")
            try:
                e = parse_encoder_file(path)
                ckpt = e.checkpoint.path if e.checkpoint else "-"
                rows.append([e.name, e.adapter, e.pooling, ckpt, source, e.description])
            except SpecError as exc:
                rows.append([path.stem, "INVALID", "", "", source, str(exc)])
        print(tabulate(rows, headers=["encoder", "adapter", "pooling", "checkpoint", "from", "description"]))
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
    where = ", ".join(str(d) for d in encoders_dir)
    say(f"all encoder specs in {where} are valid" if not args.files else "all given specs are valid")
    return 0
