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
from workflows.engine import protocol
from workflows.engine.pairs import compatible, optimizers_for, pairs

STARTUP_SECONDS = 2.8   # python -c "import torch, transformers, workflows.engine.measure"
RULES = ("tune", "final", "defaults", "stability", "steptime", "loop_options", "precision")
CLOSING = ("aggregate", "report", "all")
LOOP_VARIANTS = 6       # plain, monitor, clipping, warm-up, accumulation, activation checkpointing
STEP_ONLY_SHARE = 0.1   # optimizer.step() alone against a whole training step


def settings(config: dict, measurement: str, task: str) -> dict:
    """A measurement's settings for `task` (stability, precision): the task's entry in the
    measurement's `overrides` over the common ones. Its optimizers are those of its list that the
    profile runs on the task (it runs at their tuned hyperparameters), all of them by default: a
    `--config optimizers=[...]` narrows the measurements with the rest."""
    common = dict(config.get(measurement) or {"tasks": []})
    out = common | common.pop("overrides", {}).get(task, {})
    run = optimizers_for(config, task)
    out["optimizers"] = [o for o in out.get("optimizers", run) if o in run]
    return out


def job_settings(config: dict, measurement: str, task: str) -> dict:
    """What one job of the measurement runs with: its settings less the task and optimizer lists,
    which choose the jobs and change none (a job's params are part of what reruns it)."""
    return {k: v for k, v in settings(config, measurement, task).items() if k not in ("tasks", "optimizers")}


def jobs(config: dict) -> list[tuple[str, str, str]]:
    """Every measurement job of the profile as (rule, task, optimizer): the Snakefile's targets."""
    lo, st = config["loop_options"], config["steptime"]
    return ([("tune", t, o) for t, o in pairs(config)]
            + [("final", t, o) for t, o in pairs(config)]
            + [("defaults", t, o) for t, o in pairs(config, config["defaults_track"]["tasks"])]
            + [("stability", t, o) for t0 in config["stability"]["tasks"]
               for t, o in pairs(config, [t0], settings(config, "stability", t0)["optimizers"])]
            + [("precision", t, o) for t0 in config.get("precision", {"tasks": []})["tasks"]
               for t, o in pairs(config, [t0], settings(config, "precision", t0)["optimizers"])]
            + [("steptime", t, o) for t, o in pairs(config, st["tasks"], st.get("optimizers"))]
            + [("loop_options", t, lo["optimizer"]) for t in lo["tasks"]])


def runs_and_steps(config: dict, rule: str, task: str, optimizer: str) -> tuple[int, int]:
    """(runs, steps) of one job; steps are training steps, the step-time rule's optimizer steps."""
    steps = tasks.get(task).size(config["size"])["steps"]
    if rule == "tune":
        runs = protocol.runs_per_sweep(task, optimizer, config["tuning"])
        return runs, runs * max(1, int(steps * config["tuning"].get("steps_fraction", 1.0)))
    if rule in ("final", "defaults"):
        return len(config["final_seeds"]), len(config["final_seeds"]) * steps
    if rule == "stability":
        runs = 2 * len(settings(config, "stability", task)["scales"])
        return runs, runs * steps
    if rule == "precision":
        # fp32, bf16, fp16 unscaled, each static scale, dynamic; fp16 steps cost 10-15x fp32's on a
        # CPU without native fp16 maths, which a calibration in fp32 does not see
        p = settings(config, "precision", task)
        runs = len(p["seeds"]) * (len(p["static_scales"]) + 4)
        return runs, runs * max(1, int(steps * p.get("steps_fraction", 1.0)))
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
    from workflows.engine.harness import RunConfig, train
    found = {}
    for task in task_names:
        optimizer = next(o for o in ["adamw", *optimizers.names()]
                         if compatible(task, optimizers.get(o)) is None)
        n = max(3, min(steps, tasks.get(task).size(size)["steps"]))
        t0 = time.perf_counter()
        run = train(RunConfig(task, optimizer, size=size, seed=0, steps=n, device=device), threads=threads)
        wall = time.perf_counter() - t0
        clock = run["curves"]["time"]
        per_step = (clock[-1] - clock[1]) / (len(clock) - 2)
        found[task] = {"seconds_per_step": per_step, "run_overhead": max(0.0, wall - n * per_step)}
    return found


H100_BF16_PEAK = 989e12   # FLOP/s, dense bf16 tensor cores (NVIDIA's H100 SXM datasheet)
H100_FRACTION = 0.4       # of peak an eager PyTorch step of a mid-sized transformer reaches: an assumption
LAUNCH_FLOOR = 0.003      # s a step: forward, backward and step of a small model are kernel launches
GPU_RUN_OVERHEAD = 2.0    # s a run: build the task, move it to the device, evaluate


def gpu_estimate(step_costs: dict, peak: float = H100_BF16_PEAK, fraction: float = H100_FRACTION) -> dict:
    """A calibration without a GPU: {task: {"seconds_per_step", "run_overhead"}} with seconds per step
    max(FLOPs / (fraction × peak), LAUNCH_FLOOR). An estimate, stated as one wherever it is printed."""
    return {t: {"seconds_per_step": max(c["flops_per_step"] / (fraction * peak), LAUNCH_FLOOR),
                "run_overhead": GPU_RUN_OVERHEAD} for t, c in step_costs.items()}


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


TIMING_RULES = ("steptime", "loop_options")   # their jobs hold every core (a quiet machine)


def held_cores(rule: str, threads: int, cores: int) -> int:
    """The cores a job of `rule` holds: every core for a timing rule, else the profile's threads."""
    return cores if rule in TIMING_RULES else min(cores, threads)


def wall_seconds(rows: list[dict], threads: int, cores: int) -> float:
    """The plan's wall time: timing rules hold every core, the others the profile's threads."""
    total = 0.0
    for row in rows:
        if row["estimated_seconds"] is None:
            continue
        total += row["estimated_seconds"] * held_cores(row["rule"], threads, cores) / cores
    return total
