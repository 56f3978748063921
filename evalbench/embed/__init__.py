"""Embeddings: extraction, on-disk cache, standardisation."""
