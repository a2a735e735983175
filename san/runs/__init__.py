"""One run: config loading, records, tracking (W&B), the run lifecycle and its figures."""
