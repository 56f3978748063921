"""Probes: estimators trained on frozen embeddings (scikit-learn conventions)."""
