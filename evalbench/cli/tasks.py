"""``evalbench tasks list|show|validate|catalog``: the task catalog (never imports torch)."""

from __future__ import annotations

import argparse
from pathlib import Path

from evalbench.cli.common import add_catalog, add_dirs
from evalbench.errors import EvalbenchError, SpecError
from evalbench.specs.catalog import Dirs
from evalbench.utils.console import say


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Register the subcommand."""
    actions = add_catalog(sub, "task", __doc__, handle)
    add_dirs(actions.choices["validate"], data=True, specs=False)
    cat = actions.add_parser(
        "catalog",
        help="render tasks/README.md (task table and how to obtain each dataset)",
        description="Render the Markdown task catalog from the task specs; print it, or write tasks/README.md.",
    )
    cat.add_argument("--write", action="store_true", help="write <tasks-dir>/README.md instead of printing")
    add_dirs(cat, specs=True)
    cat.set_defaults(handler=handle)


def _split(spec) -> str:
    s = spec.splits
    return "train/valid/test" if s.type == "fixed" else f"{s.folds}-fold ({s.validation.rule})"


def check_prepared(task, data_root: Path | None) -> str | None:
    """The error of a task's prepared metadata against its spec (labels, splits, classes), if prepared.

    Only metadata is read (no audio, no torch): the checks of
    :func:`evalbench.data.task_data.build_task_data`, e.g. a class with no
    training clips.
    """
    from evalbench.data.metadata import is_prepared, read_prepared
    from evalbench.data.task_data import build_task_data
    from evalbench.errors import DataError

    root = Path(data_root) / task.dataset_name if data_root is not None else None
    if root is None or not is_prepared(root):
        return None
    try:
        build_task_data(task, read_prepared(root, check_content=False))
    except DataError as exc:
        return f"task '{task.name}': prepared data: {exc}"
    return None


def validate_all(tasks_dir: Dirs, files: list[Path] | None = None, data_root: Path | None = None) -> list[str]:
    """Error messages of all invalid task/suite files, and of prepared datasets that contradict their task.

    ``tasks_dir`` is a folder or an overlay of them (:mod:`evalbench.specs.catalog`); without ``files``, every
    task and suite the overlay resolves to is checked.
    """
    from evalbench.specs.catalog import spec_map
    from evalbench.specs.task import parse_suite_file, parse_task_file, suite_files, task_files

    errors = []
    names = set()
    for path in files or task_files(tasks_dir):
        try:
            task = parse_task_file(path)
            names.add(task.name)
        except SpecError as exc:
            errors.append(str(exc))
            continue
        problem = check_prepared(task, data_root)
        if problem:
            errors.append(problem)
    if not files:
        for path in suite_files(tasks_dir):
            try:
                suite = parse_suite_file(path)
                known = spec_map(tasks_dir)
                unknown = [t for t in suite.tasks if t not in names and t not in known]
                if unknown:
                    errors.append(f"{path}: tasks: unknown task(s) {unknown}")
                if suite.name in known:
                    errors.append(f"{path}: name: '{suite.name}' is also a task name; rename the suite")
            except SpecError as exc:
                errors.append(str(exc))
    return errors


def handle(args: argparse.Namespace) -> int:
    """Dispatch the action."""
    import yaml
    from tabulate import tabulate

    from evalbench import paths
    from evalbench.specs.catalog import origin, overridden
    from evalbench.specs.fields import to_dict
    from evalbench.specs.task import load_task, parse_suite_file, parse_task_file, suite_files, task_files

    tasks_dir = paths.task_dirs(args.tasks_dir)
    if args.action == "catalog":
        from evalbench.data import catalog

        if args.write:
            say(f"wrote {catalog.write(tasks_dir)}")
        else:
            print(catalog.render(tasks_dir), end="")
        return 0
    if args.action == "list":
        rows = []
        hidden = overridden(tasks_dir)
        for path in task_files(tasks_dir):
            source = origin(path) + (f" (overrides {origin(hidden[path.stem])})" if path.stem in hidden else "")
            try:
                t = parse_task_file(path)
                n_classes = "—" if t.labels.type == "regression" else len(t.labels.classes or []) or "from data"
                rows.append(
                    [
                        t.name,
                        t.version,
                        t.labels.type,
                        n_classes,
                        f"{t.audio.clip_seconds:g}",
                        _split(t),
                        ", ".join(t.metrics),
                        source,
                        t.description,
                    ]
                )
            except SpecError as exc:
                rows.append([path.stem, "", "INVALID", "", "", "", "", source, str(exc)])
        headers = ["task", "v", "labels", "classes", "unit s", "split", "metrics", "from", "description"]
        print(tabulate(rows, headers=headers))
        suites = []
        for path in suite_files(tasks_dir):
            try:
                s = parse_suite_file(path)
                suites.append([s.name, ", ".join(s.tasks), origin(path), s.description])
            except SpecError as exc:
                suites.append([path.stem, "INVALID", origin(path), str(exc)])
        if suites:
            print("\n" + tabulate(suites, headers=["suite", "tasks", "from", "description"]))
        return 0
    if args.action == "show":
        spec = load_task(args.name, tasks_dir)
        print(f"# {spec.source_path}  (spec sha256 {spec.sha256[:16]})")
        print(yaml.safe_dump(to_dict(spec), sort_keys=False, allow_unicode=True).rstrip())
        return 0
    errors = validate_all(tasks_dir, args.files or None, paths.data_root(args.data_root))
    for e in errors:
        print(f"INVALID {e}")
    if errors:
        raise EvalbenchError(f"{len(errors)} invalid task/suite spec(s); see above")
    where = ", ".join(str(d) for d in tasks_dir)
    say(f"all task and suite specs in {where} are valid" if not args.files else "all given specs are valid")
    return 0
