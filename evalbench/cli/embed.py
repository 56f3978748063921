"""``evalbench embed``: write the clip embeddings of encoders on tasks to ``.npz`` files.

Runs the pipeline up to the embedding cache (open the task data, load the
encoder, embed every clip, from the cache when present) and, per (encoder,
task), writes ``OUT/<task>.npz`` (several encoders: ``OUT/<encoder>/<task>.npz``)
holding ``embeddings`` (N, D) float32 in metadata order, ``file_name`` and
``label`` (N,) strings as listed in the task's metadata (multi-label: the
comma-joined string), and ``split`` (N,) strings or ``fold`` (N,) integers.
No probe is trained and nothing is written to ``results/``.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING, Any

from evalbench.cli.common import add_compute, add_dirs, add_extraction, resolve_pipeline_args
from evalbench.errors import EvalbenchError
from evalbench.utils.console import say

if TYPE_CHECKING:  # torch-heavy modules are imported by the handler only (listing never imports torch)
    import numpy as np

    from evalbench.data.task_data import TaskData
    from evalbench.embed.extract import EmbedStats


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Register the subcommand."""
    p = sub.add_parser("embed", help="write clip embeddings of encoders on tasks to .npz files", description=__doc__)
    p.add_argument(
        "--encoder", required=True, help="encoder name(s), comma-separated; hear:<module>[:<weights>] for HEAR modules"
    )
    p.add_argument(
        "--checkpoint",
        metavar="PATH|NAME=PATH,...",
        help="embed with this weights file of the (single) encoder's family, or one file per encoder (NAME=PATH,...)",
    )
    p.add_argument("--tasks", required=True, help="task and/or suite name(s), comma-separated (e.g. synth)")
    p.add_argument("--out", required=True, type=Path, help="output folder (created if needed)")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N (default: auto)")
    add_extraction(p)
    add_compute(p)
    add_dirs(p, data=True, cache=True)
    p.set_defaults(handler=handle)


def columns(data: TaskData) -> dict[str, np.ndarray]:
    """The per-clip metadata columns of an export, in the row order of ``data``.

    Returns:
        ``file_name`` and ``label`` as unicode string arrays (the metadata's own
        strings), and ``split`` (unicode) or ``fold`` (int64).
    """
    import numpy as np

    meta = data.dataset.metadata.set_index("file_name", drop=False)
    labels = meta.loc[data.files, "label"].tolist()
    out = {"file_name": np.array(data.files, dtype=str), "label": np.array(labels, dtype=str)}
    if data.fold is not None:
        out["fold"] = np.asarray(data.fold, dtype=np.int64)
    else:
        out["split"] = np.array(data.split.tolist(), dtype=str)
    return out


def _provenance(stats: EmbedStats) -> str:
    parts = stats.parts_cached + stats.parts_computed
    if stats.parts_computed == 0:
        return "from cache"
    if stats.parts_cached == 0:
        return "computed"
    return f"{stats.parts_cached} of {parts} parts from cache"


def handle(args: argparse.Namespace) -> int:
    """Resolve names, check every dataset and checkpoint, then embed and write one file per (encoder, task)."""
    import numpy as np

    from evalbench import paths
    from evalbench.data.prepare import open_task_data
    from evalbench.embed.cache import EmbeddingCache
    from evalbench.embed.extract import LoadedEncoder, embed_task, load_encoder_model, verify_checkpoint
    from evalbench.utils.device import resolve_device
    from evalbench.utils.io import atomic_savez
    from evalbench.utils.precision import check_precision, set_matmul_policy

    encoders, tasks = resolve_pipeline_args(args)
    out = Path(args.out).expanduser()
    if out.exists() and not out.is_dir():
        raise EvalbenchError(f"--out {out}: exists and is not a folder")
    # preflight, as `evalbench run` does: a bad device, dataset or weights file fails before any file is written
    device = resolve_device(args.device)
    check_precision(args.precision, device)
    set_matmul_policy(args.tf32)
    data_root = paths.data_root(args.data_root)
    datas = {t.name: open_task_data(t, data_root) for t in tasks}
    digests = {e.name: verify_checkpoint(e) for e in encoders}
    cache = EmbeddingCache(paths.cache_root(args.cache_dir))
    for spec in encoders:
        enc: LoadedEncoder | None = None
        folder = out / spec.name if len(encoders) > 1 else out
        for task in tasks:
            data = datas[task.name]
            enc = enc or load_encoder_model(
                spec, device, digests[spec.name], args.precision, args.tf32, paths.encoder_dirs(args.encoders_dir)
            )
            try:
                x, stats = embed_task(enc, data, cache, args.batch_size, args.workers)
            except EvalbenchError as exc:  # name the pair: the message alone may not say which
                raise type(exc)(f"{spec.name} × {task.name}: {exc}") from None
            arrays: dict[str, Any] = {"embeddings": np.asarray(x, dtype=np.float32), **columns(data)}
            path = folder / f"{task.name}.npz"
            atomic_savez(path, arrays, "free space there, or write the embeddings elsewhere with --out")
            say(f"{spec.name} × {task.name}: wrote {path}: embeddings {x.shape} ({_provenance(stats)})")
    return 0
