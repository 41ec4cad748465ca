"""The table of measurements: every module of this package is one measurement, holding a
module-level `MEASUREMENT` of the shape `Measurement` (its job's function, its records' kind and
table rows, its jobs and their cost in the plan). The plan, the cost tables, the record checks,
aggregation, the rules and the tests read this table; none keeps its own list.

Adding a measurement: one module here, one rule file in workflows/rules/ (its job writes
`records.record_path(RUNS, name, "{task}", "{optimizer}")`), and its include in the Snakefile.

A measurement's `name` is its Snakemake rule and the directory of its records under
results/runs/<profile>/ (`records.record_path`). The modules are found on first use, in name order
(the order of the plan's rows), so that importing the table costs nothing until it is read.
"""
from __future__ import annotations

import functools
import importlib
import pkgutil
from dataclasses import dataclass
from typing import Callable

SELECTION = "tune"   # the measurement whose records hold the selection the `reads_selection` ones read


@dataclass(frozen=True)
class Measurement:
    """One measurement.

    - `run`: the job's function, returning the record (records, for a per-seed measurement);
    - `rows`: record -> {table name: rows, "compute_seconds": training seconds it holds,
      "samples": {(task, optimizer, seed): points}}, the keys it has; a KeyError or TypeError
      there means a malformed record;
    - `tables`: the tables of results/tables/<profile>/ its rows fill;
    - `jobs`: config -> [(task, optimizer)], one job each;
    - `cost`: (config, task, optimizer) -> (runs, steps) of one job, steps in training steps
      (the step-time measurement's in optimizer steps, costed at `step_share` of a training step);
    - `per_seed`: one record per final seed (<optimizer>/seed<N>.json), else one (<optimizer>.json);
    - `reads_selection`: its job reads the tune record's selection (a DAG edge from tune);
    - `track`: for run records, the `track` its records hold (two measurements write runs);
    - `holds_every_core`: a timing job, which wants a quiet machine and reserves every core.
    """
    name: str
    kind: str
    run: Callable
    rows: Callable[[dict], dict]
    tables: tuple[str, ...]
    jobs: Callable[[dict], list[tuple[str, str]]]
    cost: Callable[[dict, str, str], tuple[int, int]]
    per_seed: bool = False
    reads_selection: bool = False
    track: str | None = None
    holds_every_core: bool = False
    step_share: float = 1.0


@functools.lru_cache(maxsize=None)
def table() -> tuple[Measurement, ...]:
    """Every measurement, in name order."""
    found = []
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda i: i.name):
        m = importlib.import_module(f"{__name__}.{info.name}").MEASUREMENT
        if m.name != info.name:
            raise ValueError(f"{__name__}.{info.name}: MEASUREMENT.name is {m.name!r}; valid: {info.name!r}, "
                             f"the module's name (the rule and the records' directory)")
        found.append(m)
    return tuple(found)


def names() -> list[str]:
    return [m.name for m in table()]


def get(name: str) -> Measurement:
    for m in table():
        if m.name == name:
            return m
    raise ValueError(f"measurement {name!r}; valid: {', '.join(names())}")


def kinds() -> tuple[str, ...]:
    """The record kinds the measurements write, each once."""
    return tuple(dict.fromkeys(m.kind for m in table()))


def row_tables() -> tuple[str, ...]:
    """The tables filled from records' rows, each once."""
    return tuple(dict.fromkeys(t for m in table() for t in m.tables))


def of_record(record: dict) -> Measurement:
    """The measurement that writes records like `record`: its kind, and for a run record its track
    (a record without one is of the tuned track). KeyError for a record no measurement writes."""
    kind = record["kind"]
    for m in table():
        if m.kind == kind and (m.track is None or m.track == record.get("track", "tuned")):
            return m
    raise KeyError(f"no measurement writes a {kind!r} record of track {record.get('track')!r}")
