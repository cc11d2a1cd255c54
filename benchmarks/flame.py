"""Summarize a py-spy raw (collapsed) profile: inclusive share of the top frames."""

from __future__ import annotations

import re
import sys
from collections import Counter
from pathlib import Path


def summarize(path: Path, top: int = 25, within: str | None = None) -> list[tuple[str, float]]:
    """(frame, inclusive share) for the ``top`` frames, optionally only stacks through
    ``within``."""
    inclusive: Counter[str] = Counter()
    total = 0
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack:
            continue
        frames = stack.split(";")
        if within is not None:
            hits = [i for i, f in enumerate(frames) if within in f]
            if not hits:
                continue
            frames = frames[hits[0] :]
        n = int(count)
        total += n
        for frame in set(re.sub(r":\d+\)", ")", f) for f in frames):
            inclusive[frame] += n
    return [(f, c / total) for f, c in inclusive.most_common(top)] if total else []


if __name__ == "__main__":
    within = sys.argv[2] if len(sys.argv) > 2 else None
    for frame, share in summarize(Path(sys.argv[1]), within=within):
        print(f"{share:6.1%}  {frame}")
