"""Small shared utilities: atomic IO, hashing, provenance, device selection."""
