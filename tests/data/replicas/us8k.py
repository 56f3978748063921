"""Miniature UrbanSound8K in the official layout, with the real quirks: mixed rates, a stereo and a 24-bit file."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import soundfile as sf

from tests.data.helpers import tone, write_audio

CLASSES = [
    "air_conditioner", "car_horn", "children_playing", "dog_bark", "drilling",
    "engine_idling", "gun_shot", "jackhammer", "siren", "street_music",
]  # fmt: skip
COLUMNS = ["slice_file_name", "fsID", "start", "end", "salience", "fold", "classID", "class"]
RATES = (44100, 48000, 22050, 16000, 96000, 11025)


def fs_id(fold: int, class_id: int, recording: int) -> int:
    """Freesound id of a replica recording (unique per fold, class and recording)."""
    return 10000 + 1000 * fold + 10 * class_id + recording


def write_us8k(root: Path, recordings: int = 1, slices: int = 2, seconds: float = 0.3) -> Path:
    """Write ``root/UrbanSound8K`` and return that folder (the official root).

    Each of the 10 folds holds, per class, ``recordings`` Freesound recordings
    cut into ``slices`` slices named ``{fsID}-{classID}-{occurrence}-{slice}.wav``
    under ``audio/fold<k>/``; all slices of a recording share its fold, as in
    the release.  Sample rates cycle through :data:`RATES`; the first slice
    is stereo and the second is 24-bit PCM, like the mixed formats of the real
    dataset.

    Args:
        root: Folder to write into.
        recordings: Recordings per class and fold.
        slices: Slices per recording.
        seconds: Slice length (the real ones are at most 4 s).
    """
    base = Path(root) / "UrbanSound8K"
    rows = []
    n = 0
    for fold in range(1, 11):
        for class_id, name in enumerate(CLASSES):
            for rec in range(recordings):
                fsid = fs_id(fold, class_id, rec)
                for sl in range(slices):
                    filename = f"{fsid}-{class_id}-0-{sl}.wav"
                    path = base / "audio" / f"fold{fold}" / filename
                    sr = RATES[n % len(RATES)]
                    freq = 150.0 * 1.35**class_id
                    if n == 0:
                        x = tone(seconds, sr, freq, seed=n)
                        path.parent.mkdir(parents=True, exist_ok=True)
                        sf.write(path, np.stack([x, 0.5 * x], axis=1), sr, subtype="PCM_16")
                    else:
                        write_audio(path, seconds, sr, freq=freq, seed=n, subtype="PCM_24" if n == 1 else "PCM_16")
                    start = 0.5 * sl
                    rows.append([filename, fsid, start, start + seconds, 1 + sl % 2, fold, class_id, name])
                    n += 1
    (base / "metadata").mkdir(parents=True, exist_ok=True)
    with open(base / "metadata" / "UrbanSound8K.csv", "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(COLUMNS)
        writer.writerows(rows)
    return base
