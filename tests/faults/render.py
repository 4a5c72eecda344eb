"""Turns the fault suite's tallies (JSON lines written by ``tally.check``)
into the table of ``docs/reliability.md``, between its two marker lines.

    python tests/faults/render.py REPORT docs/reliability.md
"""

from __future__ import annotations

import json
import sys
from collections import defaultdict
from pathlib import Path

BEGIN, END = "<!-- fault table: begin -->", "<!-- fault table: end -->"
COLUMNS = ("faults", "added", "completed", "lost", "duplicates", "at_risk", "stale_completions")


def table(lines: list[str]) -> str:
    runs: dict[str, int] = defaultdict(int)
    sums: dict[str, dict[str, int]] = defaultdict(lambda: dict.fromkeys(COLUMNS, 0))
    overlaps: dict[str, int] = {}
    notes: dict[str, str] = {}
    for line in lines:
        row = json.loads(line)
        name = row["scenario"]
        runs[name] += 1
        for column in COLUMNS:
            sums[name][column] += int(row[column])
        if row.get("overlaps") is not None:
            overlaps[name] = overlaps.get(name, 0) + int(row["overlaps"])
        if row.get("note"):
            notes[name] = row["note"]
    out = [
        "| scenario | runs | faults | jobs or events | completed | lost | run twice (allowed: in flight) "
        "| completions accepted twice | run twice at once | note |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, s in sums.items():
        out.append(
            f"| {name} | {runs[name]} | {s['faults']} | {s['added']:,} | {s['completed']:,} | {s['lost']} "
            f"| {s['duplicates']} ({s['at_risk']}) | {s['stale_completions']} "
            f"| {overlaps.get(name, 'not measured')} | {notes.get(name, '')} |"
        )
    return "\n".join(out)


def main(report: str, document: str) -> None:
    lines = [line for line in Path(report).read_text().splitlines() if line.strip()]
    doc = Path(document)
    text = doc.read_text()
    head, _, rest = text.partition(BEGIN)
    _, _, tail = rest.partition(END)
    if not rest:
        raise SystemExit(f"{document} has no {BEGIN!r} line")
    doc.write_text(f"{head}{BEGIN}\n{table(lines)}\n{END}{tail}")
    print(f"{document}: {len(lines)} scenario runs")


if __name__ == "__main__":
    main(*sys.argv[1:3])
