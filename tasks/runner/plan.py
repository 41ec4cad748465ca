"""A profile's plan before it runs: its jobs (the same list the Snakefile builds its DAG from), runs
and training steps per rule and task, FLOPs and bytes per step, and an estimated wall time.

The estimate of a job is start-up + runs × per-run overhead + training steps × seconds per step,
with seconds per step and per-run overhead from a calibration (a short timed run of each task here,
`calibrate`) and start-up the measured import of torch, transformers and the runner (2.8 s on the
2-core machine the cpu profile is published from). The step-time rule runs no training step: its
optimizer steps are counted in `steps` and estimated at a tenth of a training step's time. Wall
time is the jobs' seconds × their cores over the profile's cores (perfect packing: a floor)."""
from __future__ import annotations

import time

import optimizers
import tasks
from tasks.runner import protocol

STARTUP_SECONDS = 2.8   # python -c "import torch, transformers, tasks.runner.measure"
RULES = ("tune", "final", "defaults", "stability", "steptime", "loop_options")
CLOSING = ("aggregate", "report", "all")
LOOP_VARIANTS = 6       # plain, monitor, clipping, warm-up, accumulation, activation checkpointing
STEP_ONLY_SHARE = 0.1   # optimizer.step() alone against a whole training step


def optimizers_for(config: dict, task: str) -> list[str]:
    return config["task_optimizers"].get(task, config["optimizers"])


def pairs(config: dict, task_list=None, optimizer_list=None) -> list[tuple[str, str]]:
    """(task, optimizer) pairs to run: the pairs that can run (tasks.compatible)."""
    tasks_ = config["tasks"] if task_list is None else task_list
    return [(t, o) for t in tasks_ for o in (optimizer_list or optimizers_for(config, t))
            if tasks.compatible(t, optimizers.get(o)) is None]


def jobs(config: dict) -> list[tuple[str, str, str]]:
    """Every measurement job of the profile as (rule, task, optimizer): the Snakefile's targets."""
    lo, st = config["loop_options"], config["steptime"]
    return ([("tune", t, o) for t, o in pairs(config)]
            + [("final", t, o) for t, o in pairs(config)]
            + [("defaults", t, o) for t, o in pairs(config, config["defaults_track"]["tasks"])]
            + [("stability", t, o) for t, o in pairs(config, config["stability"]["tasks"])]
            + [("steptime", t, o) for t, o in pairs(config, st["tasks"], st.get("optimizers"))]
            + [("loop_options", t, lo["optimizer"]) for t in lo["tasks"]])


def tune_runs(config: dict, task: str, optimizer: str) -> int:
    """The sweep's runs: the initial grid, and at most two new points a refinement round (none for a
    one-point grid), for each tuning seed."""
    tuning = config["tuning"]
    grid = len(protocol.initial_grid(task, optimizer, tuning["grid_points"]))
    return (grid + (2 * tuning["refine"] if grid > 1 else 0)) * len(tuning["seeds"])


def runs_and_steps(config: dict, rule: str, task: str, optimizer: str) -> tuple[int, int]:
    """(runs, steps) of one job; steps are training steps, the step-time rule's optimizer steps."""
    steps = tasks.get(task).size(config["size"])["steps"]
    if rule == "tune":
        runs = tune_runs(config, task, optimizer)
        return runs, runs * max(1, int(steps * config["tuning"]["steps_fraction"]))
    if rule in ("final", "defaults"):
        return len(config["final_seeds"]), len(config["final_seeds"]) * steps
    if rule == "stability":
        runs = 2 * len(config["stability"]["scales"])
        return runs, runs * steps
    if rule == "steptime":
        st = config["steptime"]
        return 0, 2 * (st["warmup"] + st["steps"] * st["rounds"])
    if rule == "loop_options":
        lo = config["loop_options"]
        runs = LOOP_VARIANTS * lo["rounds"]
        return runs, runs * lo["steps"]
    raise ValueError(f"rule {rule!r}; valid: {', '.join(RULES)}")


def calibrate(task_names, size: str, device: str = "cpu", threads: int = 1, steps: int = 12) -> dict:
    """{task: {"seconds_per_step", "run_overhead"}} from one timed run of `steps` steps of each task
    (AdamW, or the task's first optimizer that can run): seconds per step from the run's own step
    clock (from step 2: the first steps warm up), overhead = the run's wall time less its steps."""
    from tasks.runner.harness import RunConfig, train
    found = {}
    for task in task_names:
        optimizer = next(o for o in ["adamw", *optimizers.names()]
                         if tasks.compatible(task, optimizers.get(o)) is None)
        n = max(3, min(steps, tasks.get(task).size(size)["steps"]))
        t0 = time.perf_counter()
        run = train(RunConfig(task, optimizer, size=size, seed=0, steps=n, device=device), threads=threads)
        wall = time.perf_counter() - t0
        clock = run["curves"]["time"]
        per_step = (clock[-1] - clock[1]) / (len(clock) - 2)
        found[task] = {"seconds_per_step": per_step, "run_overhead": max(0.0, wall - n * per_step)}
    return found


def plan_rows(config: dict, calibration: dict | None = None, step_costs: dict | None = None) -> list[dict]:
    """One row per rule and task: jobs, runs, steps, FLOPs and bytes per step (`step_costs`: task ->
    flops.step_cost), estimated job seconds (`calibration`: task -> calibrate's entry), threads."""
    rows = {}
    for rule, task, optimizer in jobs(config):
        runs, steps = runs_and_steps(config, rule, task, optimizer)
        row = rows.setdefault((rule, task), {"rule": rule, "task": task, "jobs": 0, "runs": 0, "steps": 0,
                                             "flops_per_step": None, "bytes_per_step": None,
                                             "estimated_seconds": None})
        row["jobs"] += 1
        row["runs"] += runs
        row["steps"] += steps
    for (rule, task), row in rows.items():
        if step_costs and task in step_costs:
            row["flops_per_step"] = step_costs[task]["flops_per_step"]
            row["bytes_per_step"] = step_costs[task]["bytes_per_step"]
        if calibration and task in calibration:
            c = calibration[task]
            per_step = c["seconds_per_step"] * (STEP_ONLY_SHARE if rule == "steptime" else 1.0)
            row["estimated_seconds"] = (row["jobs"] * STARTUP_SECONDS + row["runs"] * c["run_overhead"]
                                        + row["steps"] * per_step)
    return list(rows.values())


def wall_seconds(rows: list[dict], threads: int, cores: int) -> float:
    """The plan's wall time: timing rules hold every core, the others the profile's threads."""
    total = 0.0
    for row in rows:
        if row["estimated_seconds"] is None:
            continue
        held = cores if row["rule"] in ("steptime", "loop_options") else min(cores, threads)
        total += row["estimated_seconds"] * held / cores
    return total
