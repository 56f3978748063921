"""Encoder adapters: one module per encoder family behind the protocol in ``base``."""
