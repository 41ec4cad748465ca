"""`tune_horizon`: the tuning protocol again at the task's full horizon (steps_fraction 1.0) for the
pairs of the profile's `tuning.horizon_check` ({task: [optimizers]}), beside the selection the
profile's shorter tuning made (the tune record, read by the job). Issue 23's rule: a claim may rest
on a shorter tuning horizon only where it picks the same configuration as the full one. One record
(kind "horizon_check") per pair; its row is results/tables/<profile>/horizon_check.csv.

The lr ratio is counted in half-decades, the protocol's lattice step: 0 is the same lr, ±1 the
neighbouring grid point (a factor 10**0.5), so a value of ±0.25 or ±0.5 is a refinement's
difference only."""
from __future__ import annotations

import math

import numpy as np

import optimizers
import tasks
from workflows.engine import protocol, schedule as schedules
from workflows.engine.harness import record_header
from workflows.engine.measurements import Measurement, tune


def run(task: str, optimizer: str, size: str, tuning: dict, selection: dict, schedule: dict | None = None,
        device: str = "cpu", threads: int = 1, precision: str = "fp32", fp32_precision: str = "ieee",
        deterministic: bool = True) -> dict:
    """The protocol at the full horizon under the profile's `schedule`, and `selection` (the tune
    record's, made at `tuning.steps_fraction` of the steps) beside it."""
    full = {**tuning, "steps_fraction": 1.0}
    n = tune.steps(task, size, full)
    options = schedules.run_options(schedules.for_task(task, schedule), n, optimizers.get(optimizer).takes_schedule)
    runs = tune.sweep(task, optimizer, size, full, n, options, device=device, precision=precision,
                      fp32_precision=fp32_precision, deterministic=deterministic, threads=threads)
    space = protocol.search_space(task, optimizer, tuning)
    config = dict(task=task, optimizer=optimizer, size=size, seeds=list(tuning["seeds"]), trials=tuning["trials"],
                  space={k: list(v) for k, v in space.items()}, steps=n,
                  short_steps=tune.steps(task, size, tuning), schedule=options, device=device, precision=precision)
    short = {"hparams": dict(selection["hparams"]), "mean_score": selection["mean_score"][selection["trial"]]}
    return {**record_header("horizon_check", config, device, threads), "measurement": "tune_horizon",
            "short": short, "selection": protocol.select(runs, task, space),
            "runs": [{k: r[k] for k in ("trial", "stage", "tuned", "final_metric", "diverged", "train_seconds")}
                     for r in runs]}


def _same(a: dict, b: dict) -> bool:
    """The same configuration: the same lattice point in every tuned hyperparameter (the values are
    the protocol's floats; a relative 1e-9 absorbs a JSON round trip, far below a lattice step)."""
    return a.keys() == b.keys() and all(math.isclose(a[k], b[k], rel_tol=1e-9) for k in a)


def _metric(scores: list[float], direction: str) -> float:
    """A mean score back in the metric's units (NaN for a diverged trial)."""
    s = float(np.mean(scores))
    return math.nan if math.isinf(s) else (s if direction == "min" else -s)


def horizon_row(record: dict) -> dict:
    """task, optimizer, the steps of each horizon, the two selections (text, and lr and weight
    decay as numbers), lr_half_decades (log10(full lr / short lr) × 2), same (one configuration),
    the full horizon's metric of its own selection and of the short one's where the full sweep
    tried it (NaN where not), and the full selection's edge."""
    c, short, sel = record["config"], record["short"], record["selection"]
    metric = tasks.get(c["task"]).metric
    full_scores = {}
    for r in record["runs"]:
        full_scores.setdefault(r["trial"], (r["tuned"], []))[1].append(protocol.score(r, metric.direction))
    of_short = [s for h, s in full_scores.values() if _same(h, short["hparams"])]
    a, b = short["hparams"], sel["hparams"]
    edge, reason = tune.edge_words(sel)
    return {"task": c["task"], "optimizer": c["optimizer"], "metric": metric.name, "direction": metric.direction,
            "short_steps": c["short_steps"], "full_steps": c["steps"],
            "short_selected": ", ".join(f"{k} {v:.3g}" for k, v in a.items()),
            "full_selected": ", ".join(f"{k} {v:.3g}" for k, v in b.items()),
            "short_lr": a["lr"], "full_lr": b["lr"],
            "short_weight_decay": a.get("weight_decay", math.nan), "full_weight_decay": b.get("weight_decay", math.nan),
            "lr_half_decades": 2 * math.log10(b["lr"] / a["lr"]), "same": _same(a, b),
            "full_metric": _metric(full_scores[sel["trial"]][1], metric.direction),
            "full_metric_of_short": _metric(of_short[0], metric.direction) if of_short else math.nan,
            "full_trials": len(full_scores), "full_edge": edge, "full_edge_reason": reason}


def rows(record: dict) -> dict:
    return {"horizon_check": [horizon_row(record)],
            "compute_seconds": sum(r["train_seconds"] for r in record["runs"])}


def jobs(config: dict) -> list[tuple[str, str]]:
    return [(t, o) for t, names in config["tuning"].get("horizon_check", {}).items() for o in names]


def cost(config: dict, task: str, optimizer: str) -> tuple[int, int]:
    runs = protocol.runs_per_sweep(task, optimizer, tune.task_tuning(config["tuning"], task))
    return runs, runs * tasks.get(task).size(config["size"])["steps"]


MEASUREMENT = Measurement(name="tune_horizon", kind="horizon_check", run=run, rows=rows, tables=("horizon_check",),
                          jobs=jobs, cost=cost, reads_selection=True)
