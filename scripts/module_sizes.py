"""Module sizes: a module a reader can hold in mind is under 400 lines.
Prints the package's largest modules; warns for any over WARN lines and
fails (exit 1) for any over FAIL."""

from __future__ import annotations

import statistics
import sys
from pathlib import Path

WARN, FAIL = 400, 600


def main() -> int:
    root = Path(__file__).resolve().parent.parent / "src" / "conveyor"
    sizes = {p.relative_to(root.parent): len(p.read_text().splitlines()) for p in sorted(root.rglob("*.py"))}
    over = {p: n for p, n in sizes.items() if n > WARN}
    for path, lines in sorted(over.items(), key=lambda item: -item[1]):
        level = "error" if lines > FAIL else "warning"
        print(f"{level}: {path} has {lines} lines (hold it under {WARN})", file=sys.stderr)
    largest = max(sizes.values())
    print(f"modules: {len(sizes)}, median {statistics.median(sizes.values()):.0f} lines, largest {largest}")
    return 1 if any(n > FAIL for n in sizes.values()) else 0


if __name__ == "__main__":
    raise SystemExit(main())
