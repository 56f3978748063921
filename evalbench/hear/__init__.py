"""evalbench encoders as a HEAR-API module: ``evalbench.hear``.

Any encoder spec, or what ``evalbench pretrain`` produced, can be scored by
hear-eval-kit or any other harness that loads HEAR modules (docs/protocol.md §5;
Turian et al., "HEAR: Holistic Evaluation of Audio Representations", 2022)::

    import evalbench.hear as hear
    model = hear.load_model("encoders/byola-smoke.yaml")         # a spec YAML
    model = hear.load_model("encoders/checkpoints/pretrain/byola-smoke")   # a pretrain output folder
    model = hear.load_model("", encoder="logmel")                 # a spec by name
    scene = hear.get_scene_embeddings(audio, model)               # (n_sounds, scene_embedding_size)
    emb, ms = hear.get_timestamp_embeddings(audio, model)         # (n, T, D), (n, T) frame centres in ms

    python -m heareval.embeddings.runner evalbench.hear --model encoders/byola-smoke.yaml --embeddings-dir emb/byola

(hear-eval-kit names its output folder after the module and ``--model-options``,
not ``--model``, and skips tasks done there: one ``--embeddings-dir`` per encoder.)

**Overview** (the rules in full are in the module that implements them):

- :mod:`~evalbench.hear.naming`: which encoder spec the one path argument
  names (:func:`resolve_spec`): an encoder YAML, an ``evalbench pretrain``
  output folder, a checkpoint (under the YAML that registers it, or under
  ``encoder=NAME`` with its weights swapped), or ``""`` with ``encoder=`` /
  ``$EVALBENCH_HEAR_ENCODER``.  Specs that wrap a HEAR module are refused.
- :mod:`~evalbench.hear.api`: :func:`load_model` builds the encoder with
  ``evalbench run``'s code; :func:`get_scene_embeddings` is ``run``'s clip
  vector; :func:`get_timestamp_embeddings` gives the adapter's own frames.
- :mod:`~evalbench.hear.model`: :class:`EvalbenchHearModel`, the HEAR model
  object (``sample_rate``, embedding sizes, ``norm_source``).
- :mod:`~evalbench.hear.frames`: the frame-centre rule of each adapter
  (:func:`frame_times`, its table); an adapter without a rule has scene but
  no timestamp embeddings.
- :mod:`~evalbench.hear.input_stats`: where BYOL-A/MSN input statistics come
  from (``norm_mean``/``norm_std``, the spec, ``evalbench pretrain``'s
  ``state.pt``, else fitted on the first non-silent call and frozen;
  :func:`fit_input_statistics` fits them on audio of your choice).  Only the
  first three make embeddings a pure function of their own audio; under the
  last two, HEAR scores of BYOL-A/MSN are not ``run`` scores.

**Cache identity** through evalbench's own ``hear`` adapter
(``--encoder hear:evalbench.hear:<spec.yaml>``): the module's
:data:`__version__` (evalbench's version and :data:`EXPORT_VERSION`) and the
SHA-256 of the file given (the YAML, which for ``pretrain`` specs pins the
weights' SHA-256).  Editing an adapter without bumping either is invisible to
that cache (the same NOTE as in :mod:`evalbench.adapters.options.hear`).
"""

from __future__ import annotations

from evalbench import __version__ as _EVALBENCH_VERSION
from evalbench.errors import EvalbenchError as EvalbenchError
from evalbench.hear.api import fit_input_statistics, get_scene_embeddings, get_timestamp_embeddings, load_model
from evalbench.hear.frames import _FRAME_TIMES as _FRAME_TIMES
from evalbench.hear.frames import FrameRule as FrameRule
from evalbench.hear.frames import frame_times
from evalbench.hear.input_stats import NORM_POLICIES as NORM_POLICIES
from evalbench.hear.input_stats import pretrain_statistics
from evalbench.hear.model import EvalbenchHearModel
from evalbench.hear.model import log as log
from evalbench.hear.naming import ENV_ENCODER, registered_specs, resolve_spec
from evalbench.hear.naming import STATE as STATE
from evalbench.hear.naming import WEIGHTS as WEIGHTS
from evalbench.hear.naming import YAML_SUFFIXES as YAML_SUFFIXES

EXPORT_VERSION = 1  # bump when a change in this package can alter what the module returns
__version__ = f"{_EVALBENCH_VERSION}+hear{EXPORT_VERSION}"

__all__ = [
    "ENV_ENCODER",
    "EXPORT_VERSION",
    "EvalbenchHearModel",
    "fit_input_statistics",
    "frame_times",
    "get_scene_embeddings",
    "get_timestamp_embeddings",
    "load_model",
    "pretrain_statistics",
    "registered_specs",
    "resolve_spec",
]
