"""`tune`: the hyperparameter search of one optimizer on one task (workflows.engine.protocol):
every trial of the optimizer's design on every tuning seed, then the selection on the mean over
seeds. One sweep record (kind "sweep") per task × optimizer; its rows are results/tables/<profile>/tuning.csv."""
from __future__ import annotations

import optimizers
import tasks
from workflows.engine import protocol, schedule as schedules
from workflows.engine.harness import RunConfig, record_header, train
from workflows.engine.measurements import Measurement
from workflows.engine.pairs import pairs


def compact(run: dict) -> dict:
    """A run inside a sweep record: everything but the environment, which the sweep holds once."""
    return {k: v for k, v in run.items() if k not in ("environment", "schema_version")}


def steps(task: str, size: str, tuning: dict) -> int:
    """A tuning run's steps: `tuning["steps_fraction"]` of the task's."""
    return max(1, int(tasks.get(task).size(size)["steps"] * tuning["steps_fraction"]))


def run(task: str, optimizer: str, size: str, tuning: dict, schedule: dict | None = None,
        device: str = "cpu", threads: int = 1, precision: str = "fp32", fp32_precision: str = "ieee", deterministic: bool = True) -> dict:
    """The search of `protocol` at `steps` under the profile's `schedule` (stretched to those steps)."""
    spec = optimizers.get(optimizer)
    n = steps(task, size, tuning)
    options = schedules.run_options(schedules.for_task(task, schedule), n, spec.takes_schedule)
    runs = []
    for i, hparams in enumerate(protocol.trials(task, optimizer, tuning)):
        for seed in tuning["seeds"]:
            cfg = RunConfig(task, optimizer, size=size, seed=seed, steps=n, hparams=hparams, device=device,
                            precision=precision, fp32_precision=fp32_precision, deterministic=deterministic, **options)
            runs.append({**compact(train(cfg, threads=threads)), "trial": i, "tuned": hparams})
    space = protocol.search_space(task, optimizer, tuning)
    config = dict(task=task, optimizer=optimizer, size=size, seeds=list(tuning["seeds"]), trials=tuning["trials"],
                  space={k: list(v) for k, v in space.items()}, steps=n, schedule=options, device=device,
                  precision=precision)
    return {**record_header("sweep", config, device, threads), "measurement": "tune",
            "selection": protocol.select(runs, task), "runs": runs}


def _schedule_words(sched: dict) -> str:
    return sched["schedule"] + (f", warm-up {sched['warmup']}" if sched["warmup"] else "") + (
        f", floor {sched['lr_floor']:g}" if sched["schedule"] != "constant" else "") + (
        f", decay {sched['decay']:g} of the steps" if sched["schedule"] == "wsd" else "")


def trial_rows(sweep: dict) -> list[dict]:
    """One row per trial × seed of a sweep record: task, optimizer, trial, seed, every tuned
    hyperparameter as its own column (lr always), tuned (their names, comma-separated; '' where
    nothing is tuned), metric, direction, final_metric, diverged, selected, at_edge (any tuned
    hyperparameter at an extreme), edge (which), and the protocol the sweep ran (trials,
    tuning_seeds, steps, schedule, search_space) for the report to state."""
    c, sel = sweep["config"], sweep["selection"]
    metric = tasks.get(c["task"]).metric
    edge = ", ".join(k for k, v in sel["at_edge"].items() if v)
    schedule_words = _schedule_words(c["schedule"])
    rows = []
    for r in sweep["runs"]:
        rows.append({"task": c["task"], "optimizer": c["optimizer"], "trial": r["trial"], "seed": r["config"]["seed"],
                     **r["tuned"], "tuned": ", ".join(c["space"]), "metric": metric.name,
                     "direction": metric.direction, "final_metric": r["final_metric"], "diverged": r["diverged"],
                     "selected": r["trial"] == sel["trial"], "at_edge": bool(edge), "edge": edge,
                     "trials": c["trials"], "tuning_seeds": len(c["seeds"]), "steps": c["steps"],
                     "schedule": schedule_words,
                     "search_space": protocol.describe_space({k: tuple(v) for k, v in c["space"].items()})})
    return rows


def rows(sweep: dict) -> dict:
    return {"tuning": trial_rows(sweep), "compute_seconds": sum(r["train_seconds"] for r in sweep["runs"])}


def cost(config: dict, task: str, optimizer: str) -> tuple[int, int]:
    runs = protocol.runs_per_sweep(task, optimizer, config["tuning"])
    return runs, runs * steps(task, config["size"], config["tuning"])


MEASUREMENT = Measurement(name="tune", kind="sweep", run=run, rows=rows, tables=("tuning",),
                          jobs=lambda config: pairs(config), cost=cost)
