"""Result records -> tidy CSV tables in results/tables/<profile>/ (the report reads these alone)."""
from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

import tasks
from workflows.engine import device, measurements, records

# tables filled from the records' rows (each measurement's `rows`), then those written from the
# profile and the registry
ROW_TABLES = measurements.row_tables()
TABLES = tuple(f"{name}.csv" for name in ROW_TABLES) + (
    "samples.csv", "skipped.csv", "memory_model.csv", "figures.json", "environment.json")


def check(path, r: dict, runs_dir, size=None) -> dict:
    """The table rows of record `r` read from `path`, after the checks aggregation makes: its place
    under `runs_dir` and its size (`records.check_place`), and rows it can be read into. Raises
    RecordError for a record aggregation would refuse (the final job's store uses it before taking a
    record)."""
    records.check_place(path, r, runs_dir, size)
    simulated = device.simulated_refusal(r.get("environment") or {})   # no simulated record passes as a GPU one
    if simulated:
        raise records.RecordError(path, simulated, records.RECOMPUTE)
    return check_rows(path, r)


def write_tables(paths, out_dir, skipped=(), optimizer_names=(), runs_dir=None, size=None) -> Path:
    """`skipped`: (task, optimizer, why) of the pairs the profile names but cannot run;
    `optimizer_names`: the profile's optimizers, for the large-model memory table (default: all).
    With `runs_dir` (results/runs/<profile>, as the pipeline calls it), each record's task,
    optimizer, seed and kind are checked against its place there (and its size against `size`),
    every record refused is moved to `runs_dir`/refused/, and one RecordError lists them all and
    says to run the pipeline again, which recomputes them. Without it, the first refusal raises."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    rows = {name: [] for name in ROW_TABLES}
    samples, environment, compute_seconds = {}, None, 0.0
    refused = []
    for path in sorted(map(str, paths)):
        try:
            r = records.read(path)
            found = check(path, r, runs_dir, size) if runs_dir is not None else check_rows(path, r)
        except records.RecordError as e:
            if runs_dir is None:
                raise
            refused.append(f"{path}: {e.problem}; moved to {records.set_aside(path, runs_dir)}")
            continue
        for name in ROW_TABLES:
            rows[name] += found.get(name, [])
        samples.update(found.get("samples", {}))
        compute_seconds += found.get("compute_seconds", 0.0)
        if r["kind"] == "run":
            environment = environment or r["environment"]
    if refused:
        raise records.RecordError(
            f"{len(refused)} record(s) refused:\n  " + "\n  ".join(refused)
            + f"\n{records.AGAIN[0].upper()}{records.AGAIN[1:]}.")
    _write(out, rows, samples, environment, compute_seconds, skipped, optimizer_names)
    return out


def check_rows(path, r: dict) -> dict:
    """`r`'s table rows; RecordError if it cannot be read into them."""
    try:
        return _rows(r)
    except (KeyError, TypeError, IndexError, AttributeError, ValueError) as e:
        raise records.RecordError(path, f"malformed {r.get('kind')} record ({type(e).__name__}: {e})",
                                  records.RECOMPUTE) from e


def _rows(r: dict) -> dict:
    """The table rows of one record, by table name, from its measurement's `rows` (a KeyError or
    TypeError here: a malformed record)."""
    return {"compute_seconds": 0.0, **measurements.of_record(r).rows(r)}


def _write(out, rows, samples, environment, compute_seconds, skipped, optimizer_names) -> None:
    first_seed = {}   # one seed's samples per pair: enough for a picture, small enough to publish
    for task, opt, seed in sorted(samples):
        first_seed.setdefault((task, opt), seed)
    sample_rows = [dict(task=t, optimizer=o, seed=s, x=p[0], y=p[1])
                   for (t, o), s in first_seed.items() for p in samples[(t, o, s)]]
    tables = {**rows, "samples": sample_rows, "skipped": [dict(task=t, optimizer=o, why=why) for t, o, why in skipped]}
    for name, table in tables.items():
        pd.DataFrame(table).to_csv(out / f"{name}.csv", index=False, float_format="%.10g")
    from optimizers import memory
    memory.table(optimizers=optimizer_names or None).to_csv(out / "memory_model.csv", index=False, float_format="%.10g")
    # what the report's generic figures draw beside the runs (contours, modes, a printed trajectory):
    # the task's own data, so that the report never imports a task
    figures = {t: tasks.get(t).figure() for t in sorted({r["task"] for r in rows["runs"]} | {r["task"] for r in rows["tuning"]})
               if tasks.get(t).figure}
    (out / "figures.json").write_text(json.dumps(figures, sort_keys=True) + "\n")
    env = dict(environment or {})
    env["compute_seconds"] = round(compute_seconds, 1)
    (out / "environment.json").write_text(json.dumps(env, indent=1, sort_keys=True) + "\n")
