"""Miniature VoxCeleb1 replica: merged dev+test ``wav/`` tree and ``iden_split.txt`` with synthesized audio.

Layout as after unzipping ``vox1_dev_wav.zip`` and ``vox1_test_wav.zip`` into one
folder: ``wav/<speaker_id>/<youtube_id>/<nnnnn>.wav`` (16 kHz) and the official
``iden_split.txt`` (``<1|2|3> <speaker_id>/<youtube_id>/<nnnnn>.wav`` lines, in
path order).  Quirks: one file under ``wav/`` that the list does not mention and
a macOS ``._`` file, both to be ignored.  Clips are a little over 4 s, the
shortest VoxCeleb1 utterance length.
"""

from __future__ import annotations

from pathlib import Path

from tests.data.helpers import write_audio

SR = 16000
_ALPHABET = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_"


def youtube_id(k: int) -> str:
    """A deterministic 11-character YouTube-like id."""
    x = (k + 1) * 0x9E3779B97F4A7C15 % 2**66
    return "".join(_ALPHABET[(x >> (6 * i)) & 63] for i in range(11))


def speaker(s: int) -> str:
    """Speaker id ``id1000<s+1>`` as in VoxCeleb1 (id10001 ... id11251)."""
    return f"id{10001 + s}"


def iden_code(j: int) -> str:
    """Split code of a speaker's ``j``-th utterance: 1 (train) except j = 4 (2, valid) and j = 5 (3, test)."""
    return {4: "2", 5: "3"}.get(j % 6, "1")


def write_voxceleb1(root: Path, speakers: int = 4, videos: int = 3, per_video: int = 2) -> Path:
    """Write a VoxCeleb1 replica under ``root`` and return ``root``.

    Args:
        root: Folder to create (holds ``wav/`` and ``iden_split.txt``).
        speakers: Number of speakers (the classes).
        videos: YouTube videos per speaker.
        per_video: Utterances per video; a speaker's ``j``-th utterance gets
            :func:`iden_code` ``(j)``.

    Returns:
        ``root``.
    """
    lines = []
    for s in range(speakers):
        j = 0
        for v in range(videos):
            video = youtube_id(s * videos + v)
            for u in range(per_video):
                rel = f"{speaker(s)}/{video}/{u + 1:05d}.wav"
                write_audio(root / "wav" / rel, 4.0 + 0.1 * (j % 3), SR, freq=110.0 + 70.0 * s, seed=s * 50 + j)
                lines.append(f"{iden_code(j)} {rel}")
                j += 1
    write_audio(root / "wav" / speaker(0) / youtube_id(999) / "00001.wav", 4.2, SR)  # not on the list
    (root / "wav" / speaker(0) / youtube_id(0) / "._00001.wav").write_bytes(b"\x00\x05\x16\x07 resource fork")
    (root / "iden_split.txt").write_text("".join(f"{line}\n" for line in sorted(lines, key=lambda x: x[2:])))
    return root
