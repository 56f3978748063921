"""Miniature ESC-50 in the official layout: ``ESC-50-master/{audio,meta}`` with short synthesized clips."""

from __future__ import annotations

import csv
from pathlib import Path

from tests.data.helpers import write_audio

# The 50 categories in `target` order 0..49, as spelled in meta/esc50.csv.
CLASSES = [
    "dog", "rooster", "pig", "cow", "frog", "cat", "hen", "insects", "sheep", "crow",
    "rain", "sea_waves", "crackling_fire", "crickets", "chirping_birds", "water_drops", "wind", "pouring_water",
    "toilet_flush", "thunderstorm",
    "crying_baby", "sneezing", "clapping", "breathing", "coughing", "footsteps", "laughing", "brushing_teeth",
    "snoring", "drinking_sipping",
    "door_wood_knock", "mouse_click", "keyboard_typing", "door_wood_creaks", "can_opening", "washing_machine",
    "vacuum_cleaner", "clock_alarm", "clock_tick", "glass_breaking",
    "helicopter", "chainsaw", "siren", "car_horn", "engine", "train", "church_bells", "airplane", "fireworks",
    "hand_saw",
]  # fmt: skip
ESC10 = {"dog", "rooster", "rain", "sea_waves", "crackling_fire", "crying_baby", "sneezing", "clock_tick",
         "helicopter", "chainsaw"}  # fmt: skip
COLUMNS = ["filename", "fold", "target", "category", "esc10", "src_file", "take"]


def src_id(target: int, fold: int, source: int) -> str:
    """Freesound id of a replica source recording (unique per class, fold and source)."""
    return str(100000 + 1000 * target + 100 * fold + source)


def write_esc50(
    root: Path,
    targets: list[int] | None = None,
    sources_per_fold: int = 1,
    takes: int = 2,
    seconds: float = 0.25,
    sr: int = 44100,
) -> Path:
    """Write ``root/ESC-50-master`` and return that folder (the official root).

    Every class gets ``sources_per_fold`` source recordings in each of the 5
    folds, each cut into ``takes`` takes (A, B, ...) that share the fold and the
    ``src_file``, named ``{fold}-{src_file}-{take}-{target}.wav`` as in the
    official release.  The tone frequency depends on the class, so a probe can
    learn something.

    Args:
        root: Folder to write into.
        targets: Class targets to include (default: all 50).
        sources_per_fold: Source recordings per class and fold.
        takes: Takes per source recording.
        seconds: Clip length (the real clips are 5 s).
        sr: Sample rate (the real one is 44.1 kHz).
    """
    base = Path(root) / "ESC-50-master"
    rows = []
    for target in range(len(CLASSES)) if targets is None else targets:
        name = CLASSES[target]
        for fold in range(1, 6):
            for source in range(sources_per_fold):
                src = src_id(target, fold, source)
                for k in range(takes):
                    take = "ABCDEFGH"[k]
                    filename = f"{fold}-{src}-{take}-{target}.wav"
                    freq = 110.0 * 1.07**target
                    write_audio(base / "audio" / filename, seconds, sr, freq=freq, seed=int(src) + k, subtype="PCM_16")
                    rows.append([filename, fold, target, name, str(name in ESC10), src, take])
    (base / "meta").mkdir(parents=True, exist_ok=True)
    with open(base / "meta" / "esc50.csv", "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(COLUMNS)
        writer.writerows(sorted(rows))
    return base
