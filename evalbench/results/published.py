"""Published numbers shown beside the leaderboard (``results/published.yaml``), never mixed into it.

Why a separate file and section: a published score comes from someone else's
run, under their protocol, unit, split and pooling; evalbench can neither audit
nor reproduce it.  So published numbers are kept out of the run records (nothing
under ``results/<encoder>/`` is hand-written), are validated on their own, and
are rendered in their own section per published protocol, labelled as
published, with no average column: a published number never enters, and is
never ranked against, an evalbench suite average.  docs/protocol.md §6 allows a
comparison only between scores of the same protocol; the section heading names
the protocol so a reader can check.

The file is a mapping::

    unit: percent                        # or fraction; scores are written as the source prints them
    protocols: {<key>: <description>}     # every entry's protocol is one of these keys
    models: {<model>: <description>}      # every entry's model is one of these keys (name, paper, repository)
    entries:
      - {model, task, metric, score, protocol, source}  # required
        # optional: std (only if the source prints "±"), n_runs (only if stated), source_task and
        # source_metric (the source's names where they differ from evalbench's), note

``task`` and ``metric`` use evalbench's names (``tasks/<task>.yaml``;
``accuracy``, ``roc_auc``, ``map``) so a published column lines up with ours.
A malformed file raises :class:`~evalbench.errors.ResultsError` with a one-line
message naming the file, the entry and the field.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pandas as pd
import yaml
from tabulate import tabulate

from evalbench.errors import ResultsError
from evalbench.metrics import HIGHER_IS_BETTER
from evalbench.specs.yaml_io import yaml_problem

FILE_NAME = "published.yaml"
UNITS = {"percent": 100.0, "fraction": 1.0}  # the value a perfect score has in that unit
REQUIRED = ("model", "task", "metric", "score", "protocol", "source")
OPTIONAL = ("std", "n_runs", "source_task", "source_metric", "note")
PROTOCOL_PREFIX = "published: "
LABEL_SUFFIX = " (published)"


def default_path(results_dir: Path) -> Path:
    """Where ``--with-published`` looks unless told otherwise: ``<results_dir>/published.yaml``."""
    return Path(results_dir) / FILE_NAME


def _read(path: Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ResultsError(f"{path}: file not found; pass --published FILE or drop --with-published") from None
    except OSError as exc:
        raise ResultsError(f"{path}: cannot read ({exc.strerror})") from None
    except yaml.YAMLError as exc:
        raise ResultsError(f"{path}: {yaml_problem(exc)}") from None
    if not isinstance(data, dict):
        raise ResultsError(f"{path}: expected a mapping with unit, protocols, models and entries")
    return data


def _names(data: dict[str, Any], key: str, path: Path) -> dict[str, str]:
    value = data.get(key)
    if not isinstance(value, dict) or not value or not all(isinstance(v, str) and v.strip() for v in value.values()):
        raise ResultsError(f"{path}: {key}: expected a non-empty mapping of short key to description")
    return {str(k): " ".join(v.split()) for k, v in value.items()}


def _number(value: Any, where: str, field: str, unit: str, high: float) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ResultsError(
            f"{where}: {field}: {value!r} is not a number; write it as a plain number as the source prints it "
            f"(unit: {unit}, e.g. {0.832 * high:g})"
        )
    if not 0 <= value <= high:
        raise ResultsError(f"{where}: {field}: {value!r} is outside [0, {high:g}] (unit: {unit}); check the unit")
    return float(value)


def _entry(i: int, raw: Any, path: Path, unit: str, known: dict[str, dict[str, str]]) -> dict[str, Any]:
    """One validated entry as a row of :func:`load_published`'s frame."""
    where = f"{path}: entries[{i}]"
    if not isinstance(raw, dict):
        raise ResultsError(f"{where}: expected a mapping with {', '.join(REQUIRED)}")
    where += f" ({raw.get('model', '?')} / {raw.get('task', '?')})"
    unknown = sorted(set(raw) - {*REQUIRED, *OPTIONAL})
    if unknown:
        raise ResultsError(f"{where}: unknown field(s) {unknown}; allowed: {', '.join((*REQUIRED, *OPTIONAL))}")
    for field in REQUIRED:
        if field not in raw or raw[field] is None:
            raise ResultsError(f"{where}: {field}: missing; every entry needs {', '.join(REQUIRED)}")
    for field in (f for f in (*REQUIRED, *OPTIONAL) if f not in ("score", "std", "n_runs")):
        if raw.get(field) is not None and (not isinstance(raw[field], str) or not raw[field].strip()):
            raise ResultsError(f"{where}: {field}: expected a non-empty string, got {raw[field]!r}")
    for field, keys in (("protocol", known["protocols"]), ("model", known["models"])):
        if raw[field] not in keys:
            raise ResultsError(f"{where}: {field}: '{raw[field]}' is not a key of {field}s ({', '.join(keys)})")
    if raw["metric"] not in HIGHER_IS_BETTER:
        raise ResultsError(
            f"{where}: metric: '{raw['metric']}' is not an evalbench metric ({', '.join(HIGHER_IS_BETTER)}); "
            "use the closest one and put the source's name in source_metric"
        )
    high = UNITS[unit]
    std = raw.get("std")
    n_runs = raw.get("n_runs")
    if n_runs is not None and (isinstance(n_runs, bool) or not isinstance(n_runs, int) or n_runs < 1):
        raise ResultsError(f"{where}: n_runs: {n_runs!r} is not a positive integer; omit it if the source does not say")
    return {
        "entry": i,
        "model": raw["model"],
        "model_description": known["models"][raw["model"]],
        "task": raw["task"],
        "source_task": raw.get("source_task"),
        "metric": raw["metric"],
        "source_metric": raw.get("source_metric"),
        "score": _number(raw["score"], where, "score", unit, high),
        "std": None if std is None else _number(std, where, "std", unit, high),
        "n_runs": n_runs,
        "protocol": raw["protocol"],
        "protocol_description": known["protocols"][raw["protocol"]],
        "source": " ".join(raw["source"].split()),
        "note": raw.get("note"),
        "unit": unit,
        "file": str(path),
    }


def load_published(path: Path) -> pd.DataFrame:
    """Read and validate a published-numbers file; one row per entry, in file order.

    Columns: entry (index in ``entries``), model, model_description, task, source_task, metric, source_metric,
    score and std (in the file's unit, as published; std NaN where the source gives none), n_runs, protocol,
    protocol_description, source, note, unit and file.

    Raises:
        ResultsError: The file is missing, not YAML, or an entry is malformed (missing or non-numeric score,
            unknown protocol or model, duplicate entry...); the message names the file, entry and field.
    """
    path = Path(path)
    data = _read(path)
    unit = data.get("unit")
    if unit not in UNITS:
        raise ResultsError(f"{path}: unit: {unit!r} is not one of {', '.join(UNITS)}; say how scores are written")
    known = {key: _names(data, key, path) for key in ("protocols", "models")}
    entries = data.get("entries")
    if not isinstance(entries, list) or not entries:
        raise ResultsError(f"{path}: entries: expected a non-empty list of {{{', '.join(REQUIRED)}}} mappings")
    rows = [_entry(i, raw, path, unit, known) for i, raw in enumerate(entries)]
    seen: dict[tuple[str, ...], int] = {}
    for row in rows:
        key = (row["protocol"], row["model"], row["task"], row["metric"])
        if key in seen:
            raise ResultsError(
                f"{path}: entries[{row['entry']}] ({row['model']} / {row['task']}): duplicates entries[{seen[key]}] "
                "(same protocol, model, task and metric); keep one"
            )
        seen[key] = row["entry"]
    df = pd.DataFrame(rows)
    df["n_runs"] = df["n_runs"].astype("Int64")
    df[["score", "std"]] = df[["score", "std"]].astype(float)
    return df


def leaderboard_rows(published: pd.DataFrame) -> pd.DataFrame:
    """Published entries in the long form of :func:`evalbench.results.tables.collect`, plus a ``source`` column.

    Scores become fractions like evalbench's; the encoder is "<model> (published)" and the protocol
    "published: <key>", so these rows can never be grouped with evalbench's own records by accident.  Fields a
    publication does not give (task version, folds, test size, embedding width) are empty rather than guessed;
    n_seeds is the stated number of runs, if any.
    """
    scale = 1.0 / published.unit.map(UNITS)
    return pd.DataFrame(
        {
            "protocol": PROTOCOL_PREFIX + published.protocol,
            "encoder": published.model + LABEL_SUFFIX,
            "task": published.task,
            "task_version": pd.array([pd.NA] * len(published), dtype="Int64"),
            "metric": published.metric,
            "mean": (published.score * scale).round(12),  # 35.6 / 100 is 0.356, not 0.35600000000000004
            "std": (published["std"] * scale).round(12),
            "ci95_low": float("nan"),
            "ci95_high": float("nan"),
            "n_seeds": published.n_runs,
            "n_folds": pd.array([pd.NA] * len(published), dtype="Int64"),
            "n_test": pd.array([pd.NA] * len(published), dtype="Int64"),
            "embedding_dim": pd.array([pd.NA] * len(published), dtype="Int64"),
            "contaminated": False,
            "excluded": 0,
            "record": [f"{Path(f).name}#entries[{i}]" for f, i in zip(published.file, published.entry, strict=True)],
            "column": published.task + "<br>" + published.metric,
            "source": published.source,
        }
    )


def _value(score: float, unit: str) -> str:
    """A score in percent with the source's own digits (83.2 stays 83.2, 72.51 stays 72.51)."""
    return repr(round(score * 100.0 / UNITS[unit], 6))


def _cell(row: pd.Series) -> str:
    text = _value(row.score, row.unit)
    return text if pd.isna(row["std"]) else f"{text} ± {_value(row['std'], row.unit)}"


def _runs(sub: pd.DataFrame) -> str:
    stated = sub.n_runs.dropna().unique()
    if len(stated) == 0:
        return "number of runs not stated"
    runs = "/".join(str(int(n)) for n in sorted(stated))
    return f"mean of {runs} runs" + (" where stated" if sub.n_runs.isna().any() else "")


def render_published(published: pd.DataFrame) -> str:
    """One Markdown section per published protocol: models × (task, metric) with the score as published.

    Rows and columns keep the file's order (the source's), not a ranking: with no average there is nothing
    fair to rank by, and ranking published rows against each other is not this table's job.
    """
    parts = []
    for protocol, sub in published.groupby("protocol", sort=False):
        sub = sub.assign(column=sub.task + "<br>" + sub.metric, cell=[_cell(r) for _, r in sub.iterrows()])
        cells = sub.pivot(index="model", columns="column", values="cell")
        models, columns = list(dict.fromkeys(sub.model)), list(dict.fromkeys(sub.column))
        cells = cells.reindex(index=models, columns=columns).astype(object).fillna("—")
        body = [[m + LABEL_SUFFIX, *cells.loc[m].tolist()] for m in models]
        table = tabulate(body, headers=["model", *columns], tablefmt="github", disable_numparse=True)
        files = ", ".join(f"`{Path(f).name}`" for f in dict.fromkeys(sub.file))
        parts.append(
            f"\n## Published numbers — protocol `{protocol}`: {sub.protocol_description.iloc[0]}\n\n"
            f"Copied from the cited publications ({files}), not computed by evalbench: each cell is the score as "
            "published, in percent, with ± std only where the source prints one. These numbers are never averaged "
            "and never enter evalbench's averages or rankings; an evalbench score is comparable with them only if "
            "it was produced under this same protocol, unit, split and pooling (docs/protocol.md §6).\n"
            f"\n### Published `{protocol}` ({_runs(sub)})\n\n{table}\n\nModels:\n\n"
        )
        parts.append("".join(f"- `{m}`: {sub.model_description[sub.model == m].iloc[0]}\n" for m in models))
        parts.append("\nSources:\n\n")
        for source, by in sub.groupby("source", sort=False):
            parts.append(f"- {source}: {', '.join(f'`{m}`' for m in dict.fromkeys(by.model))}\n")
        noted = sub[sub.note.notna() | sub.source_metric.notna()]
        if len(noted):
            parts.append("\nNotes:\n\n")
            for _, r in noted.iterrows():
                named = f" (published as {r.source_metric})" if pd.notna(r.source_metric) else ""
                parts.append(
                    f"- `{r.model}` {r.task} {r.metric}{named}" + (f": {r.note}" if pd.notna(r.note) else "") + "\n"
                )
    return "".join(parts)
