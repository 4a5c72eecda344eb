"""What each fault scenario did and what came of it: faults injected, jobs
(or events) added, completed, lost, and run more than once, against the
at-least-once rule (only work in flight at a fault may run twice).

``check`` asserts the rule; with ``CONVEYOR_FAULT_REPORT`` set to a file,
it also appends the tally there as a JSON line, which
``tests/faults/render.py`` turns into the table of ``docs/reliability.md``.
"""

from __future__ import annotations

import itertools
import json
import os
from collections.abc import Collection, Mapping
from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class Tally:
    scenario: str
    faults: int
    added: int
    completed: int
    lost: int
    duplicates: int
    #: Items in flight at a fault: the only ones allowed to run twice.
    at_risk: int
    #: Completions accepted from a worker that no longer held the job.
    stale_completions: int = 0
    #: Items run by two handlers at the same time (None: not measured).
    overlaps: int | None = None
    note: str = ""


def check(
    scenario: str,
    *,
    faults: int,
    added: Collection[str],
    completed: Collection[str],
    runs: Mapping[str, int],
    at_risk: Collection[str] = (),
    completions: Mapping[str, int] | None = None,
    spans: Mapping[str, list[tuple[float, float]]] | None = None,
    overlap_allowed: Collection[str] = (),
    note: str = "",
) -> Tally:
    """Asserts the rule for one scenario and records its tally.

    ``runs``: how many times each item's handler ran (its side effects).
    ``completions``: how many completions each item had accepted, when the
    scenario can count them (from the queue's event stream).
    ``spans``: when each item's runs started and ended (runs that ended),
    when the scenario records them; no two runs of an item may overlap,
    except for ``overlap_allowed`` items (a worker frozen or cut off past
    its lock runs on while another takes the job over)."""
    added, completed = set(added), set(completed)
    twice = {item for item, n in runs.items() if n > 1}
    stale = sum(n - 1 for n in (completions or {}).values() if n > 1)
    tally = Tally(
        scenario=scenario,
        faults=faults,
        added=len(added),
        completed=len(completed & added),
        lost=len(added - completed),
        duplicates=len(twice),
        at_risk=len(set(at_risk)),
        stale_completions=stale,
        overlaps=None if spans is None else len(overlapping(spans)),
        note=note,
    )
    report = os.environ.get("CONVEYOR_FAULT_REPORT")
    if report:
        with open(report, "a", encoding="utf-8") as out:
            out.write(json.dumps(asdict(tally)) + "\n")
    assert tally.lost == 0, f"{scenario}: lost {sorted(added - completed)[:10]}"
    unexpected = sorted(twice - set(at_risk))[:10]
    assert not unexpected, f"{scenario}: ran twice though not in flight at a fault: {unexpected}"
    assert stale == 0, f"{scenario}: {stale} completions accepted twice"
    at_once = sorted(set(overlapping(spans or {})) - set(overlap_allowed))[:10]
    assert not at_once, f"{scenario}: run twice at once, though not cut off at a fault: {at_once}"
    return tally


def overlapping(spans: Mapping[str, list[tuple[float, float]]]) -> list[str]:
    """The items two of whose runs overlapped in time."""
    out = []
    for item, runs in spans.items():
        ordered = sorted(runs)
        if any(later[0] < earlier[1] for earlier, later in itertools.pairwise(ordered)):
            out.append(item)
    return sorted(out)
