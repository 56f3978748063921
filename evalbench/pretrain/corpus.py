"""Pretraining corpora: which audio files self-supervised pretraining reads.

Three sources, each a :class:`PretrainCorpus` (a root folder, its sorted audio
files and the SHA-256 of each file's bytes):

- :func:`folder_corpus`: every audio file below a folder, as BYOL-A pretrains
  on a folder of clips (AudioSet in both Niizumi et al., "BYOL for Audio:
  Self-Supervised Learning for General-Purpose Audio Representation", IJCNN
  2021, and the v2 paper, TASLP 2023; FSD50K only in a v1 ablation).
- :func:`task_corpus`: the training portion of a prepared evaluation task,
  never its validation or test clips (fixed splits) and never the held-out
  fold (k-fold tasks), so that a pretrain-then-probe run does not see its own
  test audio, even unlabelled (the transductive leak that in-domain
  pretraining would otherwise open).
- :func:`embedded_corpus`: unlabelled clips from the synthetic sound families of
  :mod:`evalbench.data.synthetic`, drawn from seeds that no evaluation clip of
  the synthetic suite uses, so that pretraining runs on a fresh machine without
  contaminating the embedded benchmark.

:func:`check_disjoint` is the content-level backstop for all three: the corpus
files whose bytes equal any clip of the given tasks.  This module never imports
torch.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from evalbench.data import synthetic as synth
from evalbench.data.metadata import MISSING, hash_files
from evalbench.data.prepare import open_task_data
from evalbench.data.task_data import TaskData
from evalbench.errors import DataError, EvalbenchError
from evalbench.specs.task import TaskSpec
from evalbench.utils.console import progress
from evalbench.utils.hashing import sha256_lines
from evalbench.utils.io import DATA_ADVICE, atomic_write_json, atomic_write_wav

AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".mp3", ".au", ".aiff")
CORPUS_VERSION = 1  # bump when the embedded corpus's generation changes
CORPUS_SEED = 1_000_003  # first SeedSequence word of every embedded-corpus clip (see embedded_corpus)
CORPUS_KINDS = ("pitch", "timbre", "events", "detect")  # clip i is of kind CORPUS_KINDS[i % 4]
MIN_CORPUS_SECONDS = 0.85  # an `events` clip holds events of up to 0.8 s
MARKER = "corpus.json"
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PretrainCorpus:
    """A set of audio files to pretrain on.

    Attributes:
        description: What the command prints, e.g. ``folder /x (1,234 audio files)``.
        root: Folder that ``files`` are relative to.
        files: Relative POSIX paths, sorted.
        content: File → SHA-256 of its bytes (``missing`` for a file that vanished).
        held_out: What a task corpus left out, for the run record (``fold 2``,
            ``valid and test splits``); empty for folder and embedded corpora.
        excluded: The task's clips left out (relative paths, sorted).
    """

    description: str
    root: Path
    files: list[str]
    content: dict[str, str]
    held_out: str = ""
    excluded: list[str] = field(default_factory=list)

    @property
    def fingerprint(self) -> str:
        """SHA-256 over the sorted ``file<TAB>sha256`` lines: names the training audio in run records."""
        return sha256_lines([f"{name}\t{self.content.get(name, MISSING)}" for name in sorted(self.files)])

    def __len__(self) -> int:
        return len(self.files)


def _audio_files(root: Path) -> list[str]:
    """Relative paths of the audio files below ``root``, skipping hidden entries (and thus ``._*`` files).

    Symbolic links to folders are followed (corpora are often assembled from
    links), each real folder once, so a link cycle cannot loop.
    """
    found, seen = [], set()
    for folder, dirs, names in os.walk(root, followlinks=True):
        real = os.path.realpath(folder)
        if real in seen:
            dirs[:] = []
            continue
        seen.add(real)
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        rel = Path(folder).relative_to(root)
        found += [(rel / n).as_posix() for n in names if not n.startswith(".") and n.lower().endswith(AUDIO_SUFFIXES)]
    return sorted(found)


def folder_corpus(path: Path) -> PretrainCorpus:
    """Every audio file below ``path`` (suffixes in ``AUDIO_SUFFIXES``, any case), content-hashed.

    Raises:
        DataError: The folder does not exist, is not a folder, or holds no audio.
    """
    path = Path(path).expanduser()
    if not path.is_dir():
        what = "is not a folder" if path.exists() else "not found"
        raise DataError(f"{path}: pretraining folder {what}")
    files = _audio_files(path)
    if not files:
        raise DataError(f"{path}: no audio files ({', '.join(AUDIO_SUFFIXES)}) below this pretraining folder")
    index = hash_files(path, files, f"hash {path.name}")
    content = dict(zip(index["file_name"], index["sha256"], strict=True))
    return PretrainCorpus(f"folder {path} ({len(files):,} audio files)", path, files, content)


def task_corpus(task: TaskSpec, data_root: Path, fold: int | None = None) -> PretrainCorpus:
    """The training portion of a prepared task: its ``train`` split, or every fold but ``fold``.

    A training clip whose bytes equal a held-out clip (possible only when the
    spec sets ``dataset.allow_duplicate_audio``) is left out too, so the
    held-out audio is never pretrained on under another name.

    Args:
        task: The task spec.
        data_root: Data root holding the prepared dataset (embedded datasets are generated).
        fold: For k-fold tasks, the fold that stays unseen (1..k); must be None for fixed splits.

    Raises:
        EvalbenchError: ``fold`` is missing for a k-fold task, out of range, or given for a fixed-split task.
    """
    data = open_task_data(task, data_root)
    if data.fold is not None:
        k = task.splits.folds
        if fold is None:
            raise EvalbenchError(
                f"task {task.name} is k-fold: pass --fold K (1..{k}); pretraining then uses the other folds "
                "and never fold K"
            )
        if not 1 <= fold <= k:
            raise EvalbenchError(f"task {task.name}: --fold {fold} is outside 1..{k}")
        keep, held_out, rule = data.fold != fold, f"fold {fold}", f"every fold but fold {fold}"
    else:
        if fold is not None:
            raise EvalbenchError(f"task {task.name} has fixed splits: --fold does not apply (pretraining uses 'train')")
        assert data.split is not None
        keep, held_out, rule = data.split == "train", "valid and test splits", "train split"
    content = data.dataset.content
    unseen = {content.get(f, MISSING) for f, k in zip(data.files, keep, strict=True) if not k} - {MISSING}
    files = sorted(f for f, k in zip(data.files, keep, strict=True) if k and content.get(f) not in unseen)
    excluded = sorted(set(data.files) - set(files))
    description = f"task {task.name}, {rule} ({len(files):,} clips; {held_out} held out)"
    return PretrainCorpus(
        description, data.dataset.audio_root, files, {f: content.get(f, MISSING) for f in files}, held_out, excluded
    )


def check_disjoint(corpus: PretrainCorpus, tasks_data: list[TaskData]) -> list[str]:
    """Corpus files whose content hash equals that of any clip of ``tasks_data`` (any split), sorted."""
    taken = {td.dataset.content.get(f, MISSING) for td in tasks_data for f in td.files} - {MISSING}
    return sorted(f for f in corpus.files if corpus.content.get(f, MISSING) in taken)


def _clip(i: int, n: int, sr: int) -> np.ndarray:
    """Audio of embedded-corpus clip ``i``: kind ``CORPUS_KINDS[i % 4]``, the ``i // 4``-th clip of that kind.

    The per-kind index (not ``i``) goes to the generator so that the pitch
    classes (``j % 12``), timbre families (``j % 8``) and tone presence of the
    detect kind (``j % 2``) all cycle; ``i`` itself would give pitch only
    classes C, E and G#.
    """
    kind, j = CORPUS_KINDS[i % len(CORPUS_KINDS)], i // len(CORPUS_KINDS)
    rng = np.random.default_rng([CORPUS_SEED, synth.KIND_CODE[kind], j])
    if kind == "pitch":
        return synth._pitch(j, n, sr, rng).audio
    if kind == "timbre":
        return synth._timbre(j, n, sr, rng, 1, CORPUS_SEED).audio
    if kind == "events":
        return synth._events(j, n, sr, rng).audio
    return synth._detect(j, n, sr, rng).audio


def _index(folder: Path, files: list[str], description: str) -> PretrainCorpus:
    table = hash_files(folder, files, f"hash {folder.name}")
    return PretrainCorpus(description, folder, files, dict(zip(table["file_name"], table["sha256"], strict=True)))


def embedded_corpus(
    data_root: Path, n_clips: int = 2000, seconds: float = 1.0, sample_rate: int = 16000
) -> PretrainCorpus:
    """The embedded unlabelled pretraining corpus, generated on first use.

    Clip ``i`` is of kind ``CORPUS_KINDS[i % 4]`` (pitch tones, timbre families,
    sound events, detect-style noise beds with or without a faint tone), made by
    the generators of :mod:`evalbench.data.synthetic` and written as 16-bit WAV
    under ``data_root/pretrain-corpus/v{CORPUS_VERSION}-{n_clips}x{seconds}s-{sample_rate}``.
    The defaults (2,000 one-second clips at 16 kHz) match the suite's clip
    format and BYOL-A's 16 kHz input (Niizumi et al., IJCNN 2021).

    Seeds are disjoint from the evaluation suite: an evaluation clip is drawn
    from ``default_rng([seed, KIND_CODE[kind], i])`` (and a timbre source from
    ``[seed, 2, 10**6 + source]``) with the task's small option ``seed`` (0 for
    every shipped task), while corpus clips use ``[CORPUS_SEED, code, j]`` with
    ``CORPUS_SEED = 1_000_003``.  The entropy lists differ in their first word,
    and NumPy's ``SeedSequence`` mixes up to four 32-bit entropy words into its
    128-bit pool by a bijection, so the pools differ and the streams could only
    meet by a hash collision; a spec that sets ``seed: 1000003`` would break
    this, which :func:`check_disjoint` (comparing bytes) would then report.

    Generation is atomic per file (temporary name with the process id, then
    rename), so concurrent ranks generating the same corpus are safe, and the
    marker ``corpus.json`` (parameters and fingerprint) is written last.  With
    the marker present and the files matching its fingerprint nothing is
    generated; an interrupted run (no marker) resumes, generating only absent
    files; a damaged corpus (fingerprint mismatch) is regenerated in full.

    Raises:
        ValueError: ``n_clips`` < 1, ``seconds`` < ``MIN_CORPUS_SECONDS`` or ``sample_rate`` < 8000.
    """
    if n_clips < 1 or seconds < MIN_CORPUS_SECONDS or sample_rate < 8000:
        raise ValueError(
            f"embedded corpus: need n_clips ≥ 1, seconds ≥ {MIN_CORPUS_SECONDS} and sample_rate ≥ 8000, "
            f"got {n_clips}, {seconds}, {sample_rate}"
        )
    folder = Path(data_root) / "pretrain-corpus" / f"v{CORPUS_VERSION}-{n_clips}x{seconds}s-{sample_rate}"
    width = max(5, len(str(n_clips - 1)))
    files = [f"{i:0{width}d}-{CORPUS_KINDS[i % len(CORPUS_KINDS)]}.wav" for i in range(n_clips)]
    description = f"embedded synthetic corpus ({n_clips:,} clips, seeds disjoint from the synthetic evaluation suite)"
    params = {
        "version": CORPUS_VERSION,
        "generator_version": synth.GENERATOR_VERSION,
        "corpus_seed": CORPUS_SEED,
        "n_clips": n_clips,
        "seconds": seconds,
        "sample_rate": sample_rate,
    }
    marker = _read_marker(folder / MARKER)
    overwrite = False
    if marker is not None and {k: marker.get(k) for k in params} == params:
        corpus = _index(folder, files, description)
        if marker.get("fingerprint") == corpus.fingerprint:
            return corpus
        log.warning("%s: embedded corpus changed or incomplete; regenerating it", folder)
        overwrite = True
    (folder / MARKER).unlink(missing_ok=True)
    folder.mkdir(parents=True, exist_ok=True)
    n = round(seconds * sample_rate)
    for i in progress(range(n_clips), desc="generate pretraining corpus", unit="clip", leave=False):
        dest = folder / files[i]
        if overwrite or not dest.is_file():
            atomic_write_wav(dest, _clip(i, n, sample_rate), sample_rate, DATA_ADVICE)
    corpus = _index(folder, files, description)
    atomic_write_json(folder / MARKER, {**params, "fingerprint": corpus.fingerprint})
    return corpus


def _read_marker(path: Path) -> dict | None:
    """The corpus marker's contents, or None if absent or unreadable."""
    try:
        found = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return found if isinstance(found, dict) else None
