"""Result records -> tidy CSV tables in results/tables/<profile>/ (the report reads these alone)."""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd

import tasks
from workflows.engine import precision, protocol, records

# tables filled from the records' rows (`_rows`), then those written from the profile and the registry
ROW_TABLES = ("runs", "curves", "tuning", "stability", "steptime", "loop_options", "monitor", "precision",
              "precision_scale", "routing")
TABLES = tuple(f"{name}.csv" for name in ROW_TABLES) + (
    "samples.csv", "skipped.csv", "memory_model.csv", "figures.json", "environment.json")
CURVE_POINTS = 200  # per run: enough for a figure, small enough to publish


def _thin(n: int) -> list[int]:
    if n <= CURVE_POINTS:
        return list(range(n))
    return sorted(set(np.linspace(0, n - 1, CURVE_POINTS).round().astype(int).tolist()))


def run_row(r: dict) -> dict:
    c, t, o = r["config"], r["task"], r["optimizer"]
    return {
        "task": t["name"], "task_family": t["family"], "track": r.get("track", "tuned"), "optimizer": o["name"], "family": o["family"], "implementation": o["implementation"],
        "seed": c["seed"], "lr": o["hparams"]["lr"],
        "weight_decay": o["hparams"].get("weight_decay"),
        "schedule": c.get("schedule", "constant"), "metric": t["metric"], "direction": t["direction"],
        "target": t["target"], "final_metric": r["final_metric"], "final_loss": r["final_loss"],
        "diverged": r["diverged"], "diverge_reason": r["diverge_reason"] or "",
        "steps": r["steps_done"], "steps_to_target": r["steps_to_target"],
        "seconds_to_target": r["seconds_to_target"], "step_time_median": r["step_time"]["median"],
        "state_bytes": r["state_bytes"]["measured"], "state_bytes_model": r["state_bytes"]["model"],
        "state_bytes_per_param": r["state_bytes"]["per_param"], "n_params": t["n_params"],
        "peak_memory_bytes": r["peak_memory_bytes"], "train_seconds": r["train_seconds"],
        "data_hash": t["data_hash"], "config_hash": r["config_hash"],
    }


def curve_rows(r: dict) -> list[dict]:
    key = dict(task=r["task"]["name"], optimizer=r["optimizer"]["name"], seed=r["config"]["seed"])
    loss = r["curves"]["loss"]
    rows = [{**key, "series": "loss", "step": i, "value": loss[i]} for i in _thin(len(loss))]
    # every evaluated quantity: the metric, and what a task adds (per-bucket losses, coordinates...)
    rows += [{**key, "series": name, "step": e["step"], "value": value}
             for e in r["curves"]["eval"] for name, value in e.items() if name != "step"]
    return rows


def _rel_gap(a: list[float], b: list[float]) -> float:
    """Largest relative difference between two loss curves; inf if their lengths differ."""
    if len(a) != len(b) or not a:
        return math.inf
    x, y = np.asarray(a, float), np.asarray(b, float)
    with np.errstate(invalid="ignore", divide="ignore"):
        gap = np.abs(x - y) / np.maximum(np.abs(y), 1e-300)
    return float(np.nan_to_num(gap, nan=math.inf).max())


def stability_rows(r: dict) -> list[dict]:
    c = r["config"]
    runs = r["runs"]
    unscaled = {run["axis"]: run["loss"] for run in runs if run["scale"] == 1.0}
    by_lr = {run["scale"]: run["loss"] for run in runs if run["axis"] == "lr"}
    rows = []
    for run in runs:
        rows.append({
            "task": c["task"], "optimizer": c["optimizer"], "axis": run["axis"], "scale": run["scale"],
            "lr": c["lr"], "final_metric": run["final_metric"], "diverged": run["diverged"],
            # loss x c compared with c = 1 (Adam's invariance) and with lr x c (SGD's equivalence)
            "gap_to_unscaled": _rel_gap(run["loss"], unscaled[run["axis"]]) if run["axis"] in unscaled else math.nan,
            "gap_to_lr_scaled": _rel_gap(run["loss"], by_lr[run["scale"]]) if run["axis"] == "loss" else math.nan,
        })
    return rows


# results/runs/<profile>/<directory>/<task>/<optimizer>[/seed<N>].json holds a record of this kind
LAYOUT = {"final": "run", "defaults": "run", "tune": "sweep", "stability": "stability", "steptime": "steptime",
          "loop_options": "loop_options", "precision": "precision"}
TRACKS = {"final": "tuned", "defaults": "defaults"}   # run records: tuned lr, or the entry's defaults


def path_says(path, runs_dir) -> dict | None:
    """What a record's place under `runs_dir` says it holds; None for a path outside the layout."""
    try:
        parts = Path(path).resolve().relative_to(Path(runs_dir).resolve()).parts
    except ValueError:
        return None
    if len(parts) == 4 and parts[0] in TRACKS and parts[3].startswith("seed") and parts[3].endswith(".json"):
        seed = parts[3][len("seed"):-len(".json")]
        return {"kind": "run", "track": TRACKS[parts[0]], "task": parts[1], "optimizer": parts[2],
                "seed": int(seed) if seed.isdigit() else seed}
    if len(parts) == 3 and parts[0] in LAYOUT and parts[0] not in TRACKS and parts[2].endswith(".json"):
        return {"kind": LAYOUT[parts[0]], "task": parts[1], "optimizer": parts[2][:-len(".json")]}
    return None


def record_says(r: dict) -> dict:
    c = r["config"]
    return {"kind": r["kind"], "task": c.get("task"), "optimizer": c.get("optimizer"), "seed": c.get("seed"),
            "size": c.get("size"), "track": r.get("track", "tuned")}


def check_place(path, r: dict, runs_dir, size=None) -> None:
    """Refuses a record whose place says another task, optimizer, seed or kind than the record
    (seed 0's file copied as seed 1's), or another size than the profile's."""
    expected = path_says(path, runs_dir) or {}
    if size is not None:
        expected["size"] = size
    held = record_says(r)
    if r["kind"] == "sweep" and r.get("measurement", "tune") != "tune":
        held["kind"] = f"sweep of {r['measurement']!r}"
    wrong = [k for k in expected if held.get(k) != expected[k]]
    if wrong:
        raise records.RecordError(
            path, "the path says " + ", ".join(f"{k} {expected[k]!r}" for k in wrong)
            + " but the record holds " + ", ".join(f"{k} {held.get(k)!r}" for k in wrong)
            + " (a record copied or moved over another?)", records.RECOMPUTE)


def check(path, r: dict, runs_dir, size=None) -> dict:
    """The table rows of record `r` read from `path`, after the checks aggregation makes: its place
    under `runs_dir` and its size (`check_place`), and rows it can be read into. Raises RecordError
    for a record aggregation would refuse (the final job's store uses it before taking a record)."""
    check_place(path, r, runs_dir, size)
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
    """The table rows of one record, by table name (a KeyError or TypeError here: a malformed
    record)."""
    found = {"compute_seconds": 0.0}
    if r["kind"] == "run" and r.get("track") == "defaults":
        found["runs"] = [run_row(r)]   # the self-tuning track: final values only, beside the tuned runs
        found["compute_seconds"] = r["train_seconds"]
    elif r["kind"] == "run":
        found["runs"] = [run_row(r)]
        found["curves"] = curve_rows(r)
        key = dict(task=r["task"]["name"], optimizer=r["optimizer"]["name"], seed=r["config"]["seed"])
        found["monitor"] = [{**key, **row} for row in r.get("monitor", [])]
        found["routing"] = [{**key, **row, "names": " ".join(row["names"])} for row in r["optimizer"]["routing"]]
        if r.get("samples"):
            found["samples"] = {(key["task"], key["optimizer"], key["seed"]): r["samples"]}
        found["compute_seconds"] = r["train_seconds"]
    elif r["kind"] == "sweep":
        found["tuning"] = protocol.trial_rows(r)
        found["compute_seconds"] = sum(run["train_seconds"] for run in r["runs"])
    elif r["kind"] == "stability":
        found["stability"] = stability_rows(r)
    elif r["kind"] == "steptime":
        c = r["config"]
        found["steptime"] = [{"task": c["task"], "optimizer": c["optimizer"], "baseline": c["baseline"],
                              "median_seconds": r["median_seconds"], "p10_seconds": r["p10_seconds"],
                              "p90_seconds": r["p90_seconds"], "baseline_median_seconds": r["baseline_median_seconds"],
                              "ratio_to_baseline": r["ratio_to_baseline"], "n_params": r["n_params"],
                              "bandwidth_GBps": r["bandwidth_bytes_per_s"] / 1e9,
                              "percent_of_floor": r["percent_of_floor"]}]
    elif r["kind"] == "loop_options":
        c = r["config"]
        found["loop_options"] = [{"task": c["task"], "optimizer": c["optimizer"], "n_params": r["n_params"], **row}
                                 for row in r["options"]]
    elif r["kind"] == "precision":
        found["precision"] = precision.table_rows(r)
        found["precision_scale"] = precision.scale_rows(r)
        found["compute_seconds"] = sum(run["train_seconds"] for run in r["runs"])
    return found


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
