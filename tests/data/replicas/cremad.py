"""Miniature CREMA-D replica: the repository's ``AudioWAV`` folder with synthesized audio.

Files are named ``<actor>_<sentence>_<emotion>_<level>.wav`` as in the release:
actors from 1001, the real sentence codes, the six emotions, and levels LO / MD
/ HI for sentence IEO (the only one recorded at three intensities) and XX
otherwise.  Quirks: a macOS ``._`` file in ``AudioWAV`` and the repository's
other folders and files beside it, all to be ignored.
"""

from __future__ import annotations

from pathlib import Path

from evalbench.data.datasets.cremad import EMOTIONS
from tests.data.helpers import write_audio

SR = 16000
SENTENCES = ["IEO", "DFA", "IOM", "ITH", "ITS", "IWL", "IWW", "MTI", "TAI", "TIE", "TSI", "WSI"]


def clip_name(actor: int, sentence: str, emotion: str, take: int = 0) -> str:
    """File name of one clip (IEO cycles through LO / MD / HI with ``take``, others are XX)."""
    level = ("LO", "MD", "HI")[take % 3] if sentence == "IEO" else "XX"
    return f"{actor}_{sentence}_{emotion}_{level}.wav"


def write_cremad(root: Path, actors: int = 12, sentences: int = 2) -> Path:
    """Write a CREMA-D replica under ``root`` and return ``root``.

    Args:
        root: Folder to create (the repository clone; audio in ``AudioWAV/``).
        actors: Number of actors, numbered from 1001.
        sentences: Sentences per actor (from :data:`SENTENCES`), each in all six emotions.

    Returns:
        ``root``.
    """
    for a in range(actors):
        actor = 1001 + a
        for s, sentence in enumerate(SENTENCES[:sentences]):
            for e, emotion in enumerate(EMOTIONS):
                name = clip_name(actor, sentence, emotion, take=a + e)
                seconds = 0.55 + 0.05 * ((a + s + e) % 4)
                write_audio(root / "AudioWAV" / name, seconds, SR, freq=140.0 + 90.0 * e, seed=a * 100 + s * 10 + e)
    (root / "AudioWAV" / "._1001_DFA_ANG_XX.wav").write_bytes(b"\x00\x05\x16\x07 resource fork")
    (root / "processedResults").mkdir(parents=True, exist_ok=True)
    (root / "processedResults" / "summaryTable.csv").write_text('"","FileName","VoiceVote"\n')
    (root / "README.md").write_text("CREMA-D replica for tests.\n")
    return root
