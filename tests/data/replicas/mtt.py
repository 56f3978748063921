"""A miniature MagnaTagATune: folders ``0``–``f`` of mp3 clips and a tab-separated ``annotations_final.csv``.

The annotation file has the real shape: ``clip_id``, 188 tag columns (the 50
top tags of the task spec, interleaved with 138 filler tags) and ``mp3_path``,
tab-separated with every field double-quoted (``quoted=False`` writes bare
fields).  Each folder holds ``per_folder`` clips named
``<artist>-<album>-<track#>-<title>-<start>-<end>.mp3`` (two clips per track);
clip ``k`` of a folder has style ``k % per_folder``: styles 0–4 carry a fixed
set of top-50 tags and their own register, the last style only filler tags (an
empty top-50 label).  The three broken files of docs/protocol.md §1.2 are listed in
the annotations and present as 0-byte files, as in the real archive.
Optionally the four Pons et al. index files are written (``pons_dir``).
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from tests.data.helpers import write_audio

SR = 16000
FOLDERS = "0123456789abcdef"
# Tags of the five tagged styles (all among the spec's top 50) and their fundamental.
STYLES = [
    (["guitar", "rock", "loud", "drums", "male", "male vocal"], 110.0),
    (["classical", "strings", "violin", "cello", "slow", "quiet"], 440.0),
    (["techno", "electronic", "beat", "dance", "synth", "fast"], 880.0),
    (["piano", "solo", "soft", "ambient", "new age"], 262.0),
    (["female", "vocal", "singing", "woman", "opera", "choir", "female vocal"], 660.0),
]
USED_TAGS = sorted({t for tags, _ in STYLES for t in tags})
BROKEN = {
    "0": "norine_braun-now_and_zen-08-gently-117-146.mp3",
    "8": "jacob_heringman-josquin_des_prez_lute_settings-19-gintzler__pater_noster-204-233.mp3",
    "d": "american_baroque-dances_and_suites_of_rameau_and_couperin-25-le_petit_rien_xiveme_ordre_couperin-88-117.mp3",
}


def columns(top50: list[str]) -> list[str]:
    """The 188 tag columns: the top 50 interleaved with 138 filler tags in a fixed shuffled order."""
    tags = list(top50) + [f"filler tag {i:03d}" for i in range(138)]
    order = np.random.default_rng(7).permutation(len(tags))
    return [tags[i] for i in order]


def write_mtt(
    root: Path,
    top50: list[str],
    per_folder: int = 6,
    seconds: float = 0.3,
    quoted: bool = True,
    pons_dir: str | None = None,
) -> Path:
    """Write the replica under ``root`` (the ``--source``); return ``root``.

    Args:
        root: Output folder.
        top50: The task spec's 50 tags.
        per_folder: Clips per folder (the last style of each folder is untagged).
        seconds: Clip length (the real clips are about 29.1 s).
        quoted: Double-quote every field of ``annotations_final.csv``.
        pons_dir: If given, write ``index_mtt.tsv`` and ``{train,val,test}_gt_mtt.tsv`` there
            (relative to ``root``): clip ids with ``id % 8`` in 0–5 train, 6 val, 7 test; untagged clips are left
            out, as in the Pons et al. index.
    """
    tag_cols = columns(top50)
    rows, pons = [], {"train": [], "val": [], "test": []}
    clip_id = 2
    for folder in FOLDERS:
        for k in range(per_folder):
            track, half = divmod(k, 2)
            tag = f"{folder}{track}"
            name = f"artist_{tag}-album_{folder}-{track + 1:02d}-title_{tag}-{30 * half}-{30 * half + 29}"
            style = k % per_folder
            tags, freq = STYLES[style] if style < len(STYLES) else ([f"filler tag {style:03d}"], 2000.0)
            path = f"{folder}/{name}.mp3"
            write_audio(root / path, seconds, SR, freq * (1 + 0.01 * k), seed=clip_id, format="MP3")
            rows.append([str(clip_id), *("1" if t in tags else "0" for t in tag_cols), path])
            if style < len(STYLES):
                split = "train" if clip_id % 8 < 6 else "val" if clip_id % 8 == 6 else "test"
                pons[split].append((clip_id, path, [float(t in tags) for t in top50]))
            clip_id += 3
        if folder in BROKEN:
            (root / folder / BROKEN[folder]).write_bytes(b"")
            rows.append(
                [str(clip_id), *("1" if t == "classical" else "0" for t in tag_cols), f"{folder}/{BROKEN[folder]}"]
            )
            clip_id += 3
    with open(root / "annotations_final.csv", "w", newline="") as fh:
        writer = csv.writer(fh, delimiter="\t", quoting=csv.QUOTE_ALL if quoted else csv.QUOTE_MINIMAL)
        writer.writerow(["clip_id", *tag_cols, "mp3_path"])
        writer.writerows(rows)
    if pons_dir is not None:
        index = root / pons_dir
        index.mkdir(parents=True, exist_ok=True)
        listed = sorted(c for part in pons.values() for c in part)
        (index / "index_mtt.tsv").write_text("".join(f"{cid}\t{path}\n" for cid, path, _ in listed))
        for split, clips in pons.items():
            lines = "".join(f"{cid}\t{vector}\n" for cid, _, vector in clips)
            (index / f"{split}_gt_mtt.tsv").write_text(lines)
    return root
