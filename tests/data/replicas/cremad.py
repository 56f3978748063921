"""Miniature CREMA-D replica: the repository's ``AudioWAV`` folder with synthesized audio.

Files are named ``<actor>_<sentence>_<emotion>_<level>.wav`` as in the release:
actors from 1001, the real sentence codes, the six emotions, and levels LO / MD
/ HI for sentence IEO (the only one recorded at three intensities) and XX
otherwise.  Quirks: a macOS ``._`` file in ``AudioWAV`` and the repository's
other folders and files beside it, all to be ignored.

:func:`write_cremad_full` writes the full release's 7,442 names (tiny audio) with
a synthetic actor table shaped like the published split, so that the reference
split's published counts can be checked; :func:`write_split_file` writes a split
file in the reference's per-clip or per-actor form.
"""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np

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


def full_clip_names(actor: int) -> list[str]:
    """The 82 clip names one actor has when every sentence, emotion and (for IEO) level is recorded."""
    names = []
    for sentence in SENTENCES:
        for emotion in EMOTIONS:
            if sentence == "IEO" and emotion != "NEU":
                names += [f"{actor}_{sentence}_{emotion}_{level}.wav" for level in ("LO", "MD", "HI")]
            else:
                names.append(clip_name(actor, sentence, emotion))
    return names


# A synthetic actor table shaped like the published split (63 / 9 / 19 actors); NOT the reference's actors.
FULL_SIDES = {str(a): "train" if a <= 1063 else "valid" if a <= 1072 else "test" for a in range(1001, 1092)}
# 20 clips absent (7,462 - 20 = 7,442 as released), placed so the published clip counts come out:
# train 63 x 82 - 7 - 4 left out = 5,155, valid 9 x 82 - 6 = 732, test 19 x 82 - 7 = 1,551.
FULL_ABSENT = {
    *(f"{a}_MTI_{e}_XX.wav" for a in (1050, 1065, 1080) for e in EMOTIONS),
    "1051_MTI_ANG_XX.wav",
    "1081_MTI_ANG_XX.wav",
}


def write_cremad_full(root: Path) -> Path:
    """Write 7,442 tiny clips named as a full CREMA-D release (91 actors), for the published-count checks.

    The audio is 32 samples per clip (distinct bytes), so writing and hashing stays fast; the names, not
    the sound, are what the reference split is checked against.
    """
    audio = root / "AudioWAV"
    audio.mkdir(parents=True, exist_ok=True)
    n = 0
    for actor in range(1001, 1092):
        for name in full_clip_names(actor):
            if name not in FULL_ABSENT:
                samples = (((np.arange(32) + n) % 97 - 48) * 100).astype("<i2").tobytes()
                (audio / name).write_bytes(_wav_header(len(samples)) + samples)  # libsndfile is slow per file
                n += 1
    return root


def _wav_header(n_bytes: int) -> bytes:
    """The 44-byte RIFF header of a mono 16-bit PCM WAV at :data:`SR` with ``n_bytes`` of samples."""
    fmt = struct.pack("<4sIHHIIHH", b"fmt ", 16, 1, 1, SR, SR * 2, 2, 16)
    return (
        struct.pack("<4sI4s", b"RIFF", 4 + len(fmt) + 8 + n_bytes, b"WAVE")
        + fmt
        + struct.pack("<4sI", b"data", n_bytes)
    )


def write_split_file(path: Path, root: Path, sides: dict[str, str], per_actor: bool = False) -> Path:
    """A split file in the reference's form: per clip ``file_name,label,speaker_id,split`` or per actor.

    The per-clip form lists every clip of ``root/AudioWAV`` whose actor is in ``sides``, except the
    four the reference leaves out.
    """
    from evalbench.data.datasets.cremad import REFERENCE_LEFT_OUT

    if per_actor:
        path.write_text("actor,split\n" + "".join(f"{a},{s}\n" for a, s in sorted(sides.items())))
        return path
    lines = ["file_name,label,speaker_id,split\n"]
    for wav in sorted((root / "AudioWAV").glob("[0-9]*.wav")):
        actor, _, emotion, _ = wav.stem.split("_")
        if wav.stem not in REFERENCE_LEFT_OUT and actor in sides:
            lines.append(f"{wav.name},{emotion},{actor},{sides[actor]}\n")
    path.write_text("".join(lines))
    return path
