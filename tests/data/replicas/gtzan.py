"""Miniature GTZAN with the fault-filtered split lists and the real quirks.

Quirks reproduced: ``jazz.00054.wav`` is on the train list and broken (a
truncated header), a macOS ``._blues.00000.wav`` resource fork sits beside the
audio, one genre ships ``.au`` files while the lists name ``.wav`` (or every
genre does, as in the original archive, broken ``jazz.00054.au`` included), and
some clips are on no list (unused).
"""

from __future__ import annotations

from pathlib import Path

from tests.data.helpers import write_audio

GENRES = ["blues", "classical", "country", "disco", "hiphop", "jazz", "metal", "pop", "reggae", "rock"]
AU_GENRE = "classical"
BROKEN = "jazz/jazz.00054.wav"


def write_gtzan(
    root: Path,
    sizes: tuple[int, int, int] = (4, 2, 2),
    unused: int = 1,
    split_dir: str = "",
    seconds: float = 0.3,
    sr: int = 22050,
    au_genres: tuple[str, ...] = (AU_GENRE,),
) -> Path:
    """Write ``root/genres/<genre>/<genre>.000NN.<ext>`` plus the three split lists; return ``root``.

    Per genre, the first ``sizes[0]`` ids are listed for train, the next
    ``sizes[1]`` for valid and ``sizes[2]`` for test; ``unused`` more clips
    are on no list.  ``jazz.00054.wav`` is added to the train list as a
    truncated file (``.au`` if jazz is one of ``au_genres``).

    Args:
        root: Folder to write into (plays the role of the extracted archive folder).
        sizes: Listed clips per genre for train, valid and test.
        unused: Clips per genre on no list.
        split_dir: Subfolder of ``root`` for the lists ("" = top level, or "GTZAN_split").
        seconds: Clip length (the real ones are 30 s).
        sr: Sample rate (the real one is 22,050 Hz).
        au_genres: Genres whose clips are ``.au`` files (the original archive: all ten).
    """
    root = Path(root)
    lists: dict[str, list[str]] = {"train": [], "valid": [], "test": []}
    for g, genre in enumerate(GENRES):
        ext = ".au" if genre in au_genres else ".wav"
        n_listed = sum(sizes)
        for i in range(n_listed + unused):
            write_audio(
                root / "genres" / genre / f"{genre}.{i:05d}{ext}", seconds, sr, 120.0 * 1.3**g, seed=100 * g + i
            )
            if i < sizes[0]:
                lists["train"].append(f"{genre}/{genre}.{i:05d}.wav")
            elif i < sizes[0] + sizes[1]:
                lists["valid"].append(f"{genre}/{genre}.{i:05d}.wav")
            elif i < n_listed:
                lists["test"].append(f"{genre}/{genre}.{i:05d}.wav")
    broken_ext = ".au" if "jazz" in au_genres else ".wav"
    good = write_audio(root / "genres" / f"x{broken_ext}", seconds, sr)
    cut = 12 if broken_ext == ".au" else 30  # inside the header: 24 bytes for .au, 44 for .wav
    (root / "genres" / BROKEN).with_suffix(broken_ext).write_bytes(good.read_bytes()[:cut])
    good.unlink()
    lists["train"].append(BROKEN)
    (root / "genres" / "blues" / "._blues.00000.wav").write_bytes(b"\x00\x05\x16\x07 resource fork")
    folder = root / split_dir
    folder.mkdir(parents=True, exist_ok=True)
    for split, entries in lists.items():
        (folder / f"{split}_filtered.txt").write_text("\n".join(sorted(entries)) + "\n", encoding="utf-8")
    return root
