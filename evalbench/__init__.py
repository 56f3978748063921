"""evalbench: a benchmark harness for frozen audio representations.

Data flows one way: decode audio → resample, crop/pad → encoder adapter (frame
embeddings + validity mask) → masked pooling to clip embeddings, cached on disk →
standardisation fitted on the training portion → probe selected on validation →
metrics on test → one run record → generated leaderboard.

The Python API (:mod:`evalbench.api`) does what ``evalbench run`` does, from a notebook::

    import evalbench

    results = evalbench.evaluate(encoder="logmel", tasks=["synth_pitch"], seeds=3)
    results.to_frame()            # one row per split × metric
    evalbench.load_results()      # the leaderboard, one row per run record

Importing evalbench is cheap: torch, scikit-learn and pandas load on the first call.
"""

__version__ = "0.2.0"

from evalbench.api import evaluate, load_records, load_results

__all__ = ["__version__", "evaluate", "load_records", "load_results"]
