"""Model backends (AI labelers, judges) and training."""
