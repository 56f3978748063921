"""Miniature Free Spoken Digit Dataset release: ``recordings/{digit}_{speaker}_{index}.wav`` at 8 kHz."""

from __future__ import annotations

from pathlib import Path

from tests.data.helpers import write_audio

SPEAKERS = ("george", "jackson", "lucas")
# Indices at the split boundaries: 0-4 test, 5-9 valid, 10-49 train.
INDICES = (0, 4, 5, 9, 10, 11, 30, 49)


def write_fsdd(
    root: Path,
    speakers: tuple[str, ...] = SPEAKERS,
    indices: tuple[int, ...] = INDICES,
    seconds: float = 0.3,
    sr: int = 8000,
) -> Path:
    """Write ``root/free-spoken-digit-dataset-1.0.10`` and return it (the release root).

    Every speaker says every digit once per index in ``indices``; the tone
    frequency depends on the digit and a little on the speaker.  A README and a
    ``.DS_Store`` are added, as non-audio files the builder must skip.
    """
    base = Path(root) / "free-spoken-digit-dataset-1.0.10"
    for s, speaker in enumerate(speakers):
        for digit in range(10):
            for index in indices:
                freq = 200.0 * 1.25**digit * (1.0 + 0.02 * s)
                write_audio(base / "recordings" / f"{digit}_{speaker}_{index}.wav", seconds, sr, freq, seed=index)
    (base / "README.md").write_text("# Free Spoken Digit Dataset (replica)\n", encoding="utf-8")
    (base / "recordings" / ".DS_Store").write_bytes(b"\x00\x00\x00\x01Bud1")
    return base
