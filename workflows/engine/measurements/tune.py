"""`tune`: the hyperparameter search of one optimizer on one task (workflows.engine.protocol): the
protocol's trials one after another, each on every tuning seed, the next chosen from the scores
before it, then the selection on the mean over seeds. One sweep record (kind "sweep") per task ×
optimizer; its rows are results/tables/<profile>/tuning.csv."""
from __future__ import annotations

import numpy as np

import optimizers
import tasks
from workflows.engine import protocol, schedule as schedules
from workflows.engine.harness import RunConfig, record_header, train
from workflows.engine.measurements import Measurement
from workflows.engine.pairs import pairs


def compact(run: dict) -> dict:
    """A run inside a sweep record: everything but the environment, which the sweep holds once."""
    return {k: v for k, v in run.items() if k not in ("environment", "schema_version")}


STUDIES = ("horizon_check", "repeats")   # `tuning:` keys that name studies of the protocol, not its settings


def task_tuning(tuning: dict, task: str) -> dict:
    """The protocol's settings of `tuning` for `task`'s sweeps: the studies' keys and `full_horizon`
    dropped, so that naming a study's pairs or another task's horizon reruns no sweep, and
    `steps_fraction` 1.0 on a task of `full_horizon` (a task a claim rests on is tuned at the
    horizon it is reported at, issue 23)."""
    out = {k: v for k, v in tuning.items() if k not in STUDIES + ("full_horizon",)}
    if task in tuning.get("full_horizon", []):
        out["steps_fraction"] = 1.0
    return out


def steps(task: str, size: str, tuning: dict) -> int:
    """A tuning run's steps: `tuning["steps_fraction"]` of the task's (`tuning`: `task_tuning`'s)."""
    return max(1, int(tasks.get(task).size(size)["steps"] * tuning["steps_fraction"]))


def selection_source(task: str, optimizer: str) -> tuple[str, str]:
    """The (task, optimizer) whose sweep selects the pair's hyperparameters: its own, or the one the
    task names for the entry (`Task.selection_of`: MuonClip on lm-stdlib-qk at lm-stdlib's Muon
    selection, so that the QK clip is the only difference)."""
    return tuple(tasks.get(task).selection_of.get(optimizer, (task, optimizer)))


def swept(config: dict, task_list=None) -> list[tuple[str, str]]:
    """The pairs with a sweep: the profile's pairs but those taking another's selection, and the
    pairs those take it from (a sweep without final runs where the profile does not run the source
    pair itself: the ablation still has its selection), of `task_list`'s tasks where given."""
    run = pairs(config)
    own = [p for p in run if selection_source(*p) == p]
    sources = [src for src in dict.fromkeys(selection_source(*p) for p in run) if src not in own]
    return [p for p in own + sources if task_list is None or p[0] in task_list]


def check_sources(config: dict) -> None:
    """Every pair that takes another's selection takes it from a pair that can run (ValueError
    naming the pair, its source and why not otherwise)."""
    from workflows.engine.pairs import compatible
    for task, optimizer in pairs(config):
        source = selection_source(task, optimizer)
        why = compatible(source[0], optimizers.get(source[1])) if source != (task, optimizer) else None
        if why:
            raise ValueError(f"{optimizer} on {task} runs at {source[1]}'s selection on {source[0]} "
                             f"(tasks' selection_of), which cannot run: {why}; valid: a selection_of that "
                             f"names a pair that runs")


def sweep(task: str, optimizer: str, size: str, tuning: dict, n: int, options: dict, **run_kw) -> list[dict]:
    """The protocol driven to its end: each trial `protocol.proposal` gives, run for `n` steps
    under `options` (the schedule) on every seed of `tuning["seeds"]`, its mean score fed back.
    Returns the runs, each with its trial index, stage and tuned hparams. `run_kw`: RunConfig's
    device settings and `threads` for `train`."""
    threads = run_kw.pop("threads", 1)
    direction = tasks.get(task).metric.direction
    tried, runs = [], []
    while (found := protocol.proposal(task, optimizer, tuning, tried)) is not None:
        hparams, stage = found
        scores = []
        for seed in tuning["seeds"]:
            cfg = RunConfig(task, optimizer, size=size, seed=seed, steps=n, hparams=hparams, **run_kw, **options)
            r = compact(train(cfg, threads=threads))
            scores.append(protocol.score(r, direction))
            runs.append({**r, "trial": len(tried), "stage": stage, "tuned": hparams})
        tried.append((hparams, float(np.mean(scores))))
    return runs


def run(task: str, optimizer: str, size: str, tuning: dict, schedule: dict | None = None,
        device: str = "cpu", threads: int = 1, precision: str = "fp32", fp32_precision: str = "ieee", deterministic: bool = True) -> dict:
    """The search of `protocol` at `steps` under the profile's `schedule` (stretched to those steps)."""
    spec = optimizers.get(optimizer)
    n = steps(task, size, tuning)
    options = schedules.run_options(schedules.for_task(task, schedule), n, spec.takes_schedule)
    runs = sweep(task, optimizer, size, tuning, n, options, device=device, precision=precision,
                 fp32_precision=fp32_precision, deterministic=deterministic, threads=threads)
    space = protocol.search_space(task, optimizer, tuning)
    config = dict(task=task, optimizer=optimizer, size=size, seeds=list(tuning["seeds"]), trials=tuning["trials"],
                  space={k: list(v) for k, v in space.items()}, steps=n, schedule=options, device=device,
                  precision=precision)
    return {**record_header("sweep", config, device, threads), "measurement": "tune",
            "selection": protocol.select(runs, task, space), "runs": runs}


def _schedule_words(sched: dict) -> str:
    return sched["schedule"] + (f", warm-up {sched['warmup']}" if sched["warmup"] else "") + (
        f", floor {sched['lr_floor']:g}" if sched["schedule"] != "constant" else "") + (
        f", decay {sched['decay']:g} of the steps" if sched["schedule"] == "wsd" else "")


def edge_words(selection: dict) -> tuple[str, str]:
    """(edge, edge_reason) of a selection: the hyperparameters at an edge ('lr, weight_decay') and
    why each ('lr: budget, weight_decay: hard limit'); '' for an interior selection."""
    at = [k for k, v in selection["at_edge"].items() if v]
    reasons = selection.get("edge_reason", {})
    return ", ".join(at), ", ".join(f"{k}: {reasons.get(k) or 'budget'}" for k in at)


def trial_rows(sweep: dict) -> list[dict]:
    """One row per trial × seed of a sweep record: task, optimizer, trial, stage (the protocol's:
    lr, lr-extension, weight_decay, weight_decay-extension, lr-again, refine; fixed-lr or
    defaults for an untuned pair), seed, every tuned hyperparameter as its own column (lr always),
    tuned (their names, comma-separated; '' where nothing is tuned), metric, direction,
    final_metric, diverged, selected, at_edge (any tuned hyperparameter at an edge), edge (which),
    edge_reason (why each: budget or hard limit), and the protocol the sweep ran for the report to
    state: trials (the count run), budget (`tuning.trials`), stopped_in (the stage the budget cut,
    '' if none), tuning_seeds, steps, schedule, search_space (where each lattice starts) and
    hard_limits (the bounds of the extensions)."""
    c, sel = sweep["config"], sweep["selection"]
    metric = tasks.get(c["task"]).metric
    edge, reason = edge_words(sel)
    schedule_words = _schedule_words(c["schedule"])
    run_count = len({r["trial"] for r in sweep["runs"]})
    rows = []
    for r in sweep["runs"]:
        rows.append({"task": c["task"], "optimizer": c["optimizer"], "trial": r["trial"], "stage": r["stage"],
                     "seed": r["config"]["seed"], **r["tuned"], "tuned": ", ".join(c["space"]), "metric": metric.name,
                     "direction": metric.direction, "final_metric": r["final_metric"], "diverged": r["diverged"],
                     "selected": r["trial"] == sel["trial"], "at_edge": bool(edge), "edge": edge,
                     "edge_reason": reason, "trials": run_count, "budget": c["trials"],
                     "stopped_in": sel.get("stopped_in", ""), "tuning_seeds": len(c["seeds"]), "steps": c["steps"],
                     "schedule": schedule_words,
                     "search_space": protocol.describe_space({k: tuple(v) for k, v in c["space"].items()}),
                     "hard_limits": protocol.describe_limits(c["space"])})
    return rows


def rows(sweep: dict) -> dict:
    return {"tuning": trial_rows(sweep), "compute_seconds": sum(r["train_seconds"] for r in sweep["runs"])}


def cost(config: dict, task: str, optimizer: str) -> tuple[int, int]:
    tuning = task_tuning(config["tuning"], task)
    runs = protocol.runs_per_sweep(task, optimizer, tuning)
    return runs, runs * steps(task, config["size"], tuning)


MEASUREMENT = Measurement(name="tune", kind="sweep", run=run, rows=rows, tables=("tuning",),
                          jobs=swept, cost=cost)
