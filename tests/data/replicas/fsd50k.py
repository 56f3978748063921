"""A miniature FSD50K: ``FSD50K.{dev,eval}_audio/<fname>.wav`` and ``FSD50K.ground_truth/*.csv``.

``vocabulary.csv`` is ``index,label,mid`` without a header (as documented;
``header=True`` writes one), deliberately not in alphabetical order.  ``dev.csv``
(``fname,labels,mids,split``) and ``eval.csv`` (``fname,labels,mids``) carry
quoted comma-joined labels with their AudioSet-style parents, cycling over
label sets so that every class has positives in train, val and eval.  Each clip
mixes one tone per leaf class, so a log-mel probe can learn the tags.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import soundfile as sf

from tests.data.helpers import tone

SR = 44100
VOCABULARY = ["Bark", "Dog", "Animal", "Guitar", "Music", "Speech", "Human_voice", "Water_tap_and_faucet"]
MIDS = {name: f"/m/0t{i:03d}" for i, name in enumerate(VOCABULARY)}
# Label sets in cycle order; the first label of each set is the audible leaf (one tone per leaf).
LABEL_SETS = [
    ["Bark", "Dog", "Animal"],
    ["Guitar", "Music"],
    ["Speech", "Human_voice"],
    ["Water_tap_and_faucet"],
    ["Dog", "Animal"],
    ["Music"],
    ["Speech", "Human_voice", "Music"],
    ["Guitar", "Music", "Bark", "Dog", "Animal"],
]
LEAF_HZ = {
    "Bark": 900.0,
    "Dog": 600.0,
    "Guitar": 196.0,
    "Music": 330.0,
    "Speech": 150.0,
    "Water_tap_and_faucet": 2500.0,
}


def clip_labels(i: int) -> list[str]:
    """Labels of the ``i``-th clip written (dev then eval, in file order)."""
    return LABEL_SETS[i % len(LABEL_SETS)]


def _mix(labels: list[str], seconds: float, seed: int) -> np.ndarray:
    parts = [tone(seconds, SR, LEAF_HZ[name], seed) for name in labels if name in LEAF_HZ]
    x = np.sum(parts, axis=0)
    return (0.5 * x / np.max(np.abs(x))).astype(np.float32)


def write_fsd50k(
    root: Path, train: int = 48, val: int = 16, test: int = 16, seconds: float = 0.3, header: bool = False
) -> Path:
    """Write the official folders under ``root`` (the ``--source``); return ``root``.

    Args:
        root: Output folder.
        train: Dev clips with ``split=train``.
        val: Dev clips with ``split=val``.
        test: Eval clips.
        seconds: Clip length (the real clips are 0.3-30 s).
        header: Write a header row into ``vocabulary.csv``.
    """
    truth = root / "FSD50K.ground_truth"
    truth.mkdir(parents=True, exist_ok=True)
    with open(truth / "vocabulary.csv", "w", newline="") as fh:
        writer = csv.writer(fh)
        if header:
            writer.writerow(["index", "label", "mid"])
        writer.writerows([i, name, MIDS[name]] for i, name in enumerate(VOCABULARY))
    splits = ["train"] * train + ["val"] * val + ["eval"] * test
    dev_rows, eval_rows = [], []
    for i, split in enumerate(splits):
        fname = str(64000 + 37 * i)
        labels = clip_labels(i)
        row = [fname, ",".join(labels), ",".join(MIDS[x] for x in labels)]
        folder = "FSD50K.eval_audio" if split == "eval" else "FSD50K.dev_audio"
        (root / folder).mkdir(exist_ok=True)
        sf.write(root / folder / f"{fname}.wav", _mix(labels, seconds, i), SR, subtype="PCM_16")
        (eval_rows if split == "eval" else dev_rows).append(row if split == "eval" else [*row, split])
    for name, columns, rows in (
        ("dev.csv", ["fname", "labels", "mids", "split"], dev_rows),
        ("eval.csv", ["fname", "labels", "mids"], eval_rows),
    ):
        with open(truth / name, "w", newline="") as fh:
            writer = csv.writer(fh)
            writer.writerow(columns)
            writer.writerows(rows)
    return root
