"""A miniature NSynth ``jsonwav`` release: ``nsynth-<split>/examples.json`` + ``audio/<note_str>.wav``.

Records carry the real keys (``note``, ``note_str``, ``instrument``,
``instrument_str``, ``pitch``, ``velocity``, ``sample_rate``, ``qualities``,
``qualities_str``, ``instrument_family``, ``instrument_family_str``,
``instrument_source``, ``instrument_source_str``).  Instruments differ between
splits, as in the release, and synth_lead appears in train only.  Each family
has its own register (fundamental), so a log-mel probe can learn it.
"""

from __future__ import annotations

import json
from pathlib import Path

from tests.data.helpers import write_audio

FAMILIES = ["bass", "brass", "flute", "guitar", "keyboard", "mallet", "organ", "reed", "string", "synth_lead", "vocal"]
SOURCES = ["acoustic", "electronic", "synthetic"]
QUALITIES = ["bright", "dark", "distortion", "fast_decay", "long_release", "multiphonic", "nonlinear_env",
             "percussive", "reverb", "tempo-synced"]  # fmt: skip
SR = 16000


def midi_hz(pitch: int) -> float:
    """Frequency of MIDI note ``pitch``."""
    return 440.0 * 2 ** ((pitch - 69) / 12)


def write_nsynth(root: Path, per_split: dict[str, int] | None = None, seconds: float = 0.25) -> Path:
    """Write the three split folders under ``root``; return ``root``.

    Args:
        root: Output folder (the ``--source`` of ``prepare``).
        per_split: Instruments per family in each split (default train 2, valid 1, test 1).
        seconds: Clip length (the real notes are 4 s).

    Each instrument plays 3 pitches around its family's register at velocity 100.
    """
    per_split = per_split or {"train": 2, "valid": 1, "test": 1}
    note_id = instrument_id = 0
    for split, n_inst in per_split.items():
        examples = {}
        for fam_idx, family in enumerate(FAMILIES):
            if family == "synth_lead" and split != "train":
                continue
            for _ in range(n_inst):
                source = instrument_id % 3
                instrument_str = f"{family}_{SOURCES[source]}_{instrument_id:03d}"
                for step in range(3):
                    pitch = 36 + 4 * fam_idx + step
                    note_str = f"{instrument_str}-{pitch:03d}-100"
                    qualities = [int((note_id + q) % 4 == 0) for q in range(10)]
                    examples[note_str] = {
                        "note": note_id,
                        "note_str": note_str,
                        "instrument": instrument_id,
                        "instrument_str": instrument_str,
                        "pitch": pitch,
                        "velocity": 100,
                        "sample_rate": SR,
                        "qualities": qualities,
                        "qualities_str": [q for q, on in zip(QUALITIES, qualities, strict=True) if on],
                        "instrument_family": fam_idx,
                        "instrument_family_str": family,
                        "instrument_source": source,
                        "instrument_source_str": SOURCES[source],
                    }
                    write_audio(
                        root / f"nsynth-{split}" / "audio" / f"{note_str}.wav",
                        seconds,
                        SR,
                        midi_hz(pitch),
                        seed=note_id,
                        subtype="PCM_16",
                    )
                    note_id += 1
                instrument_id += 1
        (root / f"nsynth-{split}").mkdir(parents=True, exist_ok=True)
        (root / f"nsynth-{split}" / "examples.json").write_text(json.dumps(examples, indent=2))
    return root
