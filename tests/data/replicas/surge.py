"""A miniature Surge pitch dataset: ``<tone>/<note>.ogg`` (Ogg Vorbis), one folder per preset.

Tone folders follow the archive's naming (``surge-patches-<bank>-<category>-<name>-velocity64``)
and notes are ``note<MIDI:03d>.ogg`` (docs/protocol.md §1.2; stem format unverified).  Each
note is a harmonic tone at the MIDI pitch with a tone-dependent noise seed, so a
log-mel probe can learn the pitch.
"""

from __future__ import annotations

from pathlib import Path

from tests.data.helpers import write_audio

SR = 22050
CATEGORIES = ["Leads", "Pads", "Basses", "Plucks", "Keys"]


def tone_name(i: int) -> str:
    """Folder name of replica tone ``i``."""
    return f"surge-patches-factory-{CATEGORIES[i % len(CATEGORIES)]}-Tone-{i:02d}-velocity64"


def write_surge(root: Path, tones: int = 20, notes: range = range(48, 72, 5), seconds: float = 0.25) -> Path:
    """Write ``tones`` tone folders with one ``.ogg`` per MIDI note in ``notes``; return ``root``.

    Args:
        root: Output folder (the archive's ``surge/`` folder, i.e. the ``--source``).
        tones: Number of tone (preset) folders.
        notes: MIDI notes rendered per tone.
        seconds: Clip length (the real notes are about 4 s).
    """
    for i in range(tones):
        for midi in notes:
            freq = 440.0 * 2 ** ((midi - 69) / 12)
            write_audio(root / tone_name(i) / f"note{midi:03d}.ogg", seconds, SR, freq, seed=i, format="OGG",
                        subtype="VORBIS")  # fmt: skip
    return root
