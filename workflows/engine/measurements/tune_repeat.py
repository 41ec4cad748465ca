"""`tune_repeat`: the tuning protocol repeated with other tuning seeds (`tuning.repeats`: tasks,
optimizers, seeds: one list of seeds a repeat), to measure the noise in what tuning selects: with
the same protocol, budget and horizon, how far the selected lr moves and how much the selection's
score varies from one set of tuning seeds to another. A ranking whose gaps are smaller than that
spread ranks tuning noise. One record (kind "tuning_repeat") per task × optimizer, every repeat in
the one job; its rows (one a repeat) are results/tables/<profile>/tuning_repeats.csv."""
from __future__ import annotations

import math

import optimizers
import tasks
from workflows.engine import protocol, schedule as schedules
from workflows.engine.harness import record_header
from workflows.engine.measurements import Measurement, tune


def run(task: str, optimizer: str, size: str, tuning: dict, repeat_seeds: list[list[int]],
        schedule: dict | None = None, device: str = "cpu", threads: int = 1, precision: str = "fp32",
        fp32_precision: str = "ieee", deterministic: bool = True) -> dict:
    """Every repeat of `repeat_seeds` (`tuning.repeats.seeds`): the protocol at the profile's
    tuning horizon and budget with that repeat's seeds in place of `tuning["seeds"]`."""
    n = tune.steps(task, size, tuning)
    options = schedules.run_options(schedules.for_task(task, schedule), n, optimizers.get(optimizer).takes_schedule)
    space = protocol.search_space(task, optimizer, tuning)
    repeats = []
    for seeds in repeat_seeds:
        runs = tune.sweep(task, optimizer, size, {**tuning, "seeds": list(seeds)}, n, options, device=device,
                          precision=precision, fp32_precision=fp32_precision, deterministic=deterministic,
                          threads=threads)
        repeats.append({"seeds": list(seeds), "selection": protocol.select(runs, task, space),
                        "runs": [{k: r[k] for k in ("trial", "stage", "tuned", "final_metric", "diverged",
                                                    "train_seconds")} for r in runs]})
    config = dict(task=task, optimizer=optimizer, size=size, repeats=[list(s) for s in repeat_seeds],
                  trials=tuning["trials"], space={k: list(v) for k, v in space.items()}, steps=n, schedule=options,
                  device=device, precision=precision)
    return {**record_header("tuning_repeat", config, device, threads), "measurement": "tune_repeat",
            "repeats": repeats}


def repeat_rows(record: dict) -> list[dict]:
    """One row per repeat: task, optimizer, repeat (its index), seeds ('101 102'), every tuned
    hyperparameter selected as its own column, selected (text), tuning_metric (the selected
    trial's mean metric over the repeat's seeds, NaN if it diverged), metric, direction, trials
    (the count run), edge and edge_reason, steps."""
    c = record["config"]
    metric = tasks.get(c["task"]).metric
    rows = []
    for i, rep in enumerate(record["repeats"]):
        sel = rep["selection"]
        best = sel["mean_score"][sel["trial"]]
        edge, reason = tune.edge_words(sel)
        rows.append({"task": c["task"], "optimizer": c["optimizer"], "repeat": i,
                     "seeds": " ".join(map(str, rep["seeds"])), **sel["hparams"],
                     "selected": ", ".join(f"{k} {v:.3g}" for k, v in sel["hparams"].items()),
                     "tuning_metric": math.nan if math.isinf(best) else (best if metric.direction == "min" else -best),
                     "metric": metric.name, "direction": metric.direction,
                     "trials": len({r["trial"] for r in rep["runs"]}), "edge": edge, "edge_reason": reason,
                     "steps": c["steps"]})
    return rows


def rows(record: dict) -> dict:
    return {"tuning_repeats": repeat_rows(record),
            "compute_seconds": sum(r["train_seconds"] for rep in record["repeats"] for r in rep["runs"])}


def jobs(config: dict) -> list[tuple[str, str]]:
    """Each task of `tuning.repeats` × its optimizers (default: every one the profile tunes there)."""
    repeats = config["tuning"].get("repeats", {})
    found = []
    for task in repeats.get("tasks", []):
        tuned = [o for _, o in tune.swept(config, [task]) if protocol.is_tuned(task, o)]
        found += [(task, o) for o in repeats.get("optimizers", tuned) if o in tuned]
    return found


def cost(config: dict, task: str, optimizer: str) -> tuple[int, int]:
    tuning = tune.task_tuning(config["tuning"], task)
    runs = sum(protocol.runs_per_sweep(task, optimizer, {**tuning, "seeds": s})
               for s in config["tuning"]["repeats"]["seeds"])
    return runs, runs * tune.steps(task, config["size"], tuning)


MEASUREMENT = Measurement(name="tune_repeat", kind="tuning_repeat", run=run, rows=rows, tables=("tuning_repeats",),
                          jobs=jobs, cost=cost)
