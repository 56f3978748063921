"""Miniature VoxForge replica: extracted upload archives with synthesized audio, nested or flat.

Layouts read by the ``voxforge`` builder: ``<lang>/<user>-<yyyymmdd>-<id>/wav/*.wav``
(nested, one folder per language) or ``<user>-<yyyymmdd>-<id>/wav/*.wav`` (flat,
as the reference harness's download script extracts every archive into one
folder), plus the archive's ``etc/README`` (with its ``Language:`` line) and
``etc/PROMPTS``.  Quirks: one upload per language that ships ``flac/`` only
(skipped), the same upload-folder name in two languages (``anonymous-…``
uploads; nested only, the group must be language-qualified), and a macOS
``._`` file.  :func:`url_list` writes the TFDS ``voxforge_urls.txt`` lines of
a flat replica.
"""

from __future__ import annotations

from pathlib import Path

from tests.data.helpers import write_audio

SR = 16000
LANGUAGES = ["de", "en", "es", "fr", "it", "ru"]


def upload_folder(lang_index: int, k: int, flat: bool = False) -> str:
    """Name of upload ``k`` of a language, ``<user>-<yyyymmdd>-<id>``.

    Upload 0 is ``anonymous-20080504-qvg`` in every language when nested; flat
    folders must differ, so there it is ``anonymous-2008050<lang_index>-qvg``.
    """
    if k == 0:
        return f"anonymous-2008050{lang_index}-qvg" if flat else "anonymous-20080504-qvg"
    return f"speaker{lang_index}{k}-2009{k % 12 + 1:02d}{k % 28 + 1:02d}-{'abcdefgh'[k % 8]}{lang_index}x"


def readme(user: str, lang: str) -> str:
    """An ``etc/README`` as the VoxForge submission applet writes it."""
    return (
        f"User Name:{user}\n\nSpeaker Characteristics:\n\nGender: Male\nAge Range: Adult\n"
        f"Language: {lang.upper()}\nPronunciation dialect: unknown\n\nRecording Information:\n\nFile type: wav\n"
    )


def write_voxforge(
    root: Path, folders: int = 4, clips: int = 3, languages: list[str] | None = None, flat: bool = False
) -> Path:
    """Write a VoxForge replica under ``root`` and return ``root``.

    Args:
        root: Folder to create (holds one folder per language, or every upload when ``flat``).
        folders: Upload folders with ``wav/`` per language.
        clips: Clips per upload folder.
        languages: Languages (default: the six of the task).
        flat: Every upload directly under ``root`` (the reference download script's layout).

    Returns:
        ``root``.
    """
    for li, lang in enumerate(languages or LANGUAGES):
        base = root if flat else root / lang
        for k in range(folders):
            upload = base / upload_folder(li, k, flat)
            for c in range(clips):
                seconds = 0.35 + 0.05 * ((k + c) % 3)
                write_audio(upload / "wav" / f"a{c + 1:04d}.wav", seconds, SR, freq=130.0 + 60.0 * li, seed=k * 10 + c)
            (upload / "etc").mkdir(parents=True, exist_ok=True)
            (upload / "etc" / "README").write_text(readme(upload.name, lang))
            (upload / "etc" / "PROMPTS").write_text(
                "".join(f"{upload.name}/mfc/a{c + 1:04d} WORDS\n" for c in range(clips))
            )
        flac_only = base / f"flaconly{li}-20100101-zz"
        write_audio(flac_only / "flac" / "a0001.flac", 0.4, SR, freq=300.0)
        (flac_only / "etc").mkdir()
        (flac_only / "etc" / "README").write_text(readme(flac_only.name, lang))
        (base / upload_folder(li, 0, flat) / "wav" / "._a0001.wav").write_bytes(b"\x00\x05\x16\x07 resource fork")
    return root


def url_list(folders: int = 4, languages: list[str] | None = None) -> str:
    """The TFDS ``voxforge_urls.txt`` lines naming the uploads of a flat replica (language folder before Trunk)."""
    host = "www.repository.voxforge1.org/downloads"
    return "".join(
        f"{host}/{lang}/Trunk/Audio/Main/16kHz_16bit/{upload_folder(li, k, flat=True)}.tgz\n"
        for li, lang in enumerate(languages or LANGUAGES)
        for k in range(folders)
    )
