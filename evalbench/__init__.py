"""evalbench: a benchmark harness for frozen audio representations.

Data flows one way: decode audio → resample, crop/pad → encoder adapter (frame
embeddings + validity mask) → masked pooling to clip embeddings, cached on disk →
standardisation fitted on the training portion → probe selected on validation →
metrics on test → one run record → generated leaderboard.
"""

__version__ = "0.2.0"

__all__ = ["__version__"]
