"""Operators: one task's work each, calling hooks and the library."""
