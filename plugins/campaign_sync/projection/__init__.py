"""Projection: per-destination attribute selection, normalization, hashing and contract checks."""
