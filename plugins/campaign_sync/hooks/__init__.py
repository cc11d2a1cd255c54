"""Hooks: connections and wire protocols."""
