"""Miniature VoxForge replica: per-language folders of extracted upload archives with synthesized audio.

Layout read by the ``voxforge`` builder: ``<lang>/<user>-<yyyymmdd>-<id>/wav/*.wav``
plus the archive's ``etc/README`` and ``etc/PROMPTS``.  Quirks: one upload that
ships ``flac/`` only (skipped), the same upload-folder name in two languages
(``anonymous-…`` uploads; the group must be language-qualified), and a macOS
``._`` file.
"""

from __future__ import annotations

from pathlib import Path

from tests.data.helpers import write_audio

SR = 16000
LANGUAGES = ["de", "en", "es", "fr", "it", "ru"]


def upload_folder(lang_index: int, k: int) -> str:
    """Name of upload ``k`` of a language, ``<user>-<yyyymmdd>-<id>``; upload 0 is ``anonymous-20080504-qvg`` in all."""
    if k == 0:
        return "anonymous-20080504-qvg"
    return f"speaker{lang_index}{k}-2009{k % 12 + 1:02d}{k % 28 + 1:02d}-{'abcdefgh'[k % 8]}{lang_index}x"


def write_voxforge(root: Path, folders: int = 4, clips: int = 3, languages: list[str] | None = None) -> Path:
    """Write a VoxForge replica under ``root`` and return ``root``.

    Args:
        root: Folder to create (holds one folder per language).
        folders: Upload folders with ``wav/`` per language.
        clips: Clips per upload folder.
        languages: Language folders (default: the six of the task).

    Returns:
        ``root``.
    """
    for li, lang in enumerate(languages or LANGUAGES):
        for k in range(folders):
            upload = root / lang / upload_folder(li, k)
            for c in range(clips):
                seconds = 0.35 + 0.05 * ((k + c) % 3)
                write_audio(upload / "wav" / f"a{c + 1:04d}.wav", seconds, SR, freq=130.0 + 60.0 * li, seed=k * 10 + c)
            (upload / "etc").mkdir(parents=True, exist_ok=True)
            (upload / "etc" / "README").write_text(f"User Name:{upload.name}\nLanguage: {lang.upper()}\n")
            (upload / "etc" / "PROMPTS").write_text(
                "".join(f"{upload.name}/mfc/a{c + 1:04d} WORDS\n" for c in range(clips))
            )
        flac_only = root / lang / f"flaconly{li}-20100101-zz"
        write_audio(flac_only / "flac" / "a0001.flac", 0.4, SR, freq=300.0)
        (root / lang / upload_folder(li, 0) / "wav" / "._a0001.wav").write_bytes(b"\x00\x05\x16\x07 resource fork")
    return root
