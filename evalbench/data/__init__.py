"""Data: canonical metadata, audio decoding and preprocessing, splits, dataset builders."""
