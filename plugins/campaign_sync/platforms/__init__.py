"""Shared machinery for ad and messaging platform destinations: HTTP with rate limits and
retries, deterministic batches, per-run checkpoints and sync modes."""
