"""Dataset builders: one module per dataset family, reading the official layout as published."""
