"""Miniature Speech Commands replica: the official folder layout and list files with short synthesized audio.

Layout as in ``speech_commands_v0.0{1,2}.tar.gz`` (no top folder): one folder per
word of ``<speaker>_nohash_<n>.wav`` files, ``validation_list.txt`` and
``testing_list.txt`` with ``word/file.wav`` lines, ``_background_noise_/`` with
long noise files, ``LICENSE`` and ``README.md``.  Quirks: an upper-case junk
folder and a macOS ``._`` resource-fork file, both to be ignored.
"""

from __future__ import annotations

from pathlib import Path

from evalbench.data.datasets.speech_commands import WORDS
from tests.data.helpers import write_audio

SR = 16000


def speaker_id(k: int) -> str:
    """An 8-hex-digit speaker id like the real ones (e.g. ``0a7c2a8d``)."""
    return f"{(k * 2654435761) % 2**32:08x}"


def list_split(index: int) -> str:
    """Split of the ``index``-th file of a word: 3 of every 5 train, then one valid, one test."""
    return {3: "valid", 4: "test"}.get(index % 5, "train")


def clip_path(word: str, i: int) -> str:
    """Relative path of the ``i``-th file of ``word`` (speaker ``i``, utterance ``len(word) % 3``)."""
    return f"{word}/{speaker_id(i)}_nohash_{len(word) % 3}.wav"


def write_speech_commands(root: Path, version: int = 2, per_word: int = 5) -> Path:
    """Write a Speech Commands replica under ``root`` and return ``root``.

    Args:
        root: Folder to create (the archive's extraction folder).
        version: 1 (30 words) or 2 (35 words).
        per_word: Files per word; file ``i`` of a word is spoken by speaker
            ``i`` and is on the lists as :func:`list_split` says.

    Returns:
        ``root``.
    """
    root.mkdir(parents=True, exist_ok=True)
    lists: dict[str, list[str]] = {"valid": [], "test": []}
    for w, word in enumerate(WORDS[version]):
        for i in range(per_word):
            rel = clip_path(word, i)
            write_audio(root / rel, 0.2 + 0.3 * ((w + i) % 4) / 3, SR, freq=150.0 + 45.0 * w, seed=w * 100 + i)
            if list_split(i) != "train":
                lists[list_split(i)].append(rel)
    (root / "validation_list.txt").write_text("".join(f"{p}\n" for p in sorted(lists["valid"])))
    (root / "testing_list.txt").write_text("".join(f"{p}\n" for p in sorted(lists["test"])))
    write_audio(root / "_background_noise_" / "white_noise.wav", 3.0, SR, freq=97.0)
    write_audio(root / "_background_noise_" / "running_tap.wav", 2.5, SR, freq=61.0)
    (root / "_background_noise_" / "README.md").write_text("Long background noise recordings.\n")
    write_audio(root / "Junk" / f"{speaker_id(0)}_nohash_0.wav", 0.3, SR)
    (root / "yes" / f"._{speaker_id(0)}_nohash_9.wav").write_bytes(b"\x00\x05\x16\x07 macOS resource fork")
    (root / "LICENSE").write_text("Creative Commons BY 4.0 (replica)\n")
    (root / "README.md").write_text("Speech Commands replica for tests.\n")
    return root
