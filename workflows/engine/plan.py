"""A profile's plan before it runs: its jobs (the same list the Snakefile builds its DAG from), runs
and training steps per rule and task, FLOPs and bytes per step, and an estimated wall time.

On the machine it runs on, the estimate of a job is start-up + a job overhead + runs × per-run
overhead + training steps × seconds per step (`estimate_seconds`), with seconds per step and the
overheads from a calibration (before a run, a short timed run of each task here, `calibrate`, whose
overhead is the run's; after one, the profile's own final runs, `recorded_calibration`, whose
overhead is the final jobs' per job, and the precision study's step time from its own records) and start-up the measured import of torch, transformers and the runner (2.8 s
on the 2-core machine the cpu profile is published from). The step-time rule runs no training step:
its optimizer steps are counted in `steps` and estimated at a tenth of a training step's time. Wall
time is the jobs' seconds × their cores over the profile's cores (perfect packing: a floor).

Without a GPU (`--h100`, `gpu_estimate`) a job's step is costed from FLOPs and bytes: the model's
forward and backward at 40 % of the H100's datasheet peak for the job's precision (bf16 autocast,
IEEE fp32, fp64; the precision study's one fp32 arm weighted in), the optimizer's own step from the
entry's `step_flops` (Newton-Schulz in bf16, Shampoo's and SOAP's products in fp32, SVD and QR at 1 %
of the fp32 peak) and its bytes, no faster than the memory bandwidth and a 3 ms launch floor. Its wall
time (`gpu_wall_seconds`) has the GPU pool of workflows/profiles/gpu as its parallelism: timing jobs
alone, the others `pool` at a time but no faster than the GPU's busy seconds one after another. An
estimate (GPU_ESTIMATE says so wherever it is printed), never a measurement."""
from __future__ import annotations

import math
import time
from pathlib import Path

import torch

import optimizers
import tasks
from workflows.engine import measurements
from workflows.engine.pairs import compatible, optimizers_for

STARTUP_SECONDS = 2.8   # python -c "import torch, transformers, workflows.engine.harness"
CLOSING = ("aggregate", "publish_tables", "report", "all")   # the jobs after every measurement's


def settings(config: dict, measurement: str, task: str) -> dict:
    """A measurement's settings for `task` (stability, precision): the task's entry in the
    measurement's `overrides` over the common ones. Its optimizers are those of its list that the
    profile runs on the task (it runs at their tuned hyperparameters), all of them by default: a
    `--config optimizers=[...]` narrows the measurements with the rest."""
    common = dict(config[measurement])
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
    return [(m.name, t, o) for m in measurements.table() for t, o in m.jobs(config)]


def runs_and_steps(config: dict, rule: str, task: str, optimizer: str) -> tuple[int, int]:
    """(runs, steps) of one job; steps are training steps, the step-time rule's optimizer steps."""
    return measurements.get(rule).cost(config, task, optimizer)


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


def recorded_calibration(run_rows: list[dict], job_rows: list[dict], precision_rows: list[dict] = ()) -> dict:
    """`calibrate`'s {task: {"seconds_per_step", "run_overhead"}} from a profile's final runs, on the
    machine that ran them, with no training here, and a "job_overhead": seconds per step the tuned
    runs' training seconds over their steps (the runs table's rows, `run_rows`); the task's final
    jobs' time outside start-up and training steps (`job_rows`: workflows.engine.cost.benchmark_rows;
    building, evaluating, the job's own imports and records) as an overhead per job, not per run:
    on the published cpu profile it does not grow with a job's runs (a tune job of 16 logreg
    runs spent 2.6 s outside start-up and steps, a final job of 3 spent 2.8 s), so charging it per
    run planned the tune rule at 1.8× its measured seconds. 0 where no job was benchmarked (or a
    job took its seeds from the store). With the precision table's rows (`precision_rows`), a
    "precision_factor": the precision study's seconds per step over the final runs' (autocast on a
    CPU casts every operand: bf16 and fp16 steps are several times an fp32 one; probes add an fp32
    backward). A task without a final run has no calibration."""
    found = {}
    tuned = [r for r in run_rows if r["track"] == "tuned"]
    for task in sorted({r["task"] for r in tuned}):
        runs = [r for r in tuned if r["task"] == task]
        steps = sum(r["steps"] for r in runs)
        if not steps:
            continue
        jobs = [j for j in job_rows if j["rule"] == "final" and j["task"] == task and j["s"] == j["s"]]
        timed = [r for r in runs if r["optimizer"] in {j["optimizer"] for j in jobs}]
        outside = (sum(j["s"] for j in jobs) - len(jobs) * STARTUP_SECONDS
                   - sum(r["train_seconds"] for r in timed))
        per_step = sum(r["train_seconds"] for r in runs) / steps
        found[task] = {"seconds_per_step": per_step, "run_overhead": 0.0,
                       "job_overhead": max(0.0, outside / len(jobs)) if jobs and timed else 0.0}
        mixed = [r for r in precision_rows if r["task"] == task and r["steps_done"] == r["steps_done"]]
        if sum(r["steps_done"] for r in mixed):
            found[task]["precision_factor"] = (sum(r["train_seconds"] for r in mixed)
                                               / sum(r["steps_done"] for r in mixed)) / per_step
    return found


def table_rows(path) -> list[dict]:
    """A table's rows as dicts (numbers as numbers); none where the table is absent or empty."""
    import pandas as pd
    try:
        return pd.read_csv(path).to_dict("records")
    except (FileNotFoundError, pd.errors.EmptyDataError):
        return []


def published_check(tables_dir) -> list[dict]:
    """The plan against what a published run measured, per rule: the plan's estimate of the jobs,
    runs and steps the run had (its plan.csv), calibrated from its own records (`recorded_calibration`
    of its runs, cost and precision tables), beside the jobs' measured seconds (cost.csv): rows of
    rule, planned_seconds, measured_seconds, plan_over_measured. Final and precision are
    calibrated from their own records; the other rules are predictions from them."""
    tables_dir = Path(tables_dir)
    cost_rows = table_rows(tables_dir / "cost.csv")
    calibration = recorded_calibration(table_rows(tables_dir / "runs.csv"), cost_rows,
                                       table_rows(tables_dir / "precision.csv"))
    planned, measured = {}, {}
    for r in table_rows(tables_dir / "plan.csv"):
        if r["task"] in calibration:
            planned[r["rule"]] = planned.get(r["rule"], 0.0) + estimate_seconds(
                r["rule"], r["jobs"], r["runs"], r["steps"], calibration[r["task"]])
    for r in cost_rows:
        if r["task"] in calibration:
            measured[r["rule"]] = measured.get(r["rule"], 0.0) + r["s"]
    return [{"rule": rule, "planned_seconds": planned[rule], "measured_seconds": measured[rule],
             "plan_over_measured": planned[rule] / measured[rule]}
            for rule in sorted(set(planned) & set(measured))]


def estimate_seconds(rule: str, jobs: int, runs: int, steps: int, calibration: dict) -> float:
    """A rule's jobs of one task on the calibrated machine: start-up and the job overhead per job,
    the run overhead per run, and the steps at the task's seconds per step × the rule's step share
    (× the precision factor for the precision study, where the calibration has one)."""
    c = calibration
    per_step = c["seconds_per_step"] * measurements.get(rule).step_share
    if rule == "precision":
        per_step *= c.get("precision_factor", 1.0)
    return jobs * (STARTUP_SECONDS + c.get("job_overhead", 0.0)) + runs * c["run_overhead"] + steps * per_step


# NVIDIA's H100 SXM datasheet, dense (no sparsity): FLOP/s by what a job's products run in, HBM3 bytes/s.
H100_PEAKS = {"bf16": 989e12, "fp16": 989e12, "tf32": 494.5e12, "fp32": 67e12, "fp64": 34e12}
H100_BF16_PEAK = H100_PEAKS["bf16"]
H100_BANDWIDTH = 3.35e12
H100_FRACTION = 0.4       # of peak an eager PyTorch step of a mid-sized transformer reaches: an assumption
DECOMPOSITION_FRACTION = 0.01   # of the fp32 peak an SVD, eigh or QR of a 100-2000-row matrix reaches
# (cuSOLVER's bidiagonalisation and QR sweeps are sequential and latency-bound): an assumption, to be
# replaced by the GPU check's SVD timings; at it Shampoo's every-step SVDs of the gpu LM take ~3 s a step
LAUNCH_FLOOR = 0.003      # s a step: forward, backward and step of a small model are kernel launches
GPU_RUN_OVERHEAD = 2.0    # s a run: build the task, move it to the device, evaluate
GPU_PROFILE = Path(__file__).resolve().parents[1] / "profiles" / "gpu" / "config.yaml"
GPU_ESTIMATE = (f"one H100 at {H100_FRACTION:.0%} of its datasheet peak for the jobs' precision "
                f"(bf16 {H100_PEAKS['bf16'] / 1e12:g}, IEEE fp32 {H100_PEAKS['fp32'] / 1e12:g} TFLOP/s), "
                f"{H100_BANDWIDTH / 1e12:g} TB/s, SVD/QR at {DECOMPOSITION_FRACTION:.0%} of fp32, at least "
                f"{LAUNCH_FLOOR * 1e3:g} ms a step, the optimizer's step included: an estimate from FLOPs and "
                f"bytes, not a measurement")


def precision_fp32_share(config: dict, task: str) -> float:
    """The share of the precision study's runs in fp32: one arm of fp32, bf16, fp16 unscaled, each
    static scale and dynamic (its fp32 reference gradients every `probe_every` steps are left out)."""
    return 1 / (len(settings(config, "precision", task)["static_scales"]) + 4)


def job_precision(config: dict, rule: str, task: str) -> str:
    """What a job's matrix products run in (an H100_PEAKS key): the stability study's dtype, the
    precision study's half precision (its fp32 arm is added by gpu_estimate), the task's
    `train_precision` for tuning and final runs, else fp32 (IEEE on CUDA: TF32 is an explicit option)."""
    if rule == "stability":
        return {"float32": "fp32", "float64": "fp64"}[settings(config, "stability", task).get("dtype", "float32")]
    if rule == "precision":
        return "bf16"   # its fp32 arm: precision_fp32_share
    if rule in ("tune", "final", "defaults"):
        return config["train_precision"].get(task, "fp32")
    return "fp32"


def gpu_step(cost: dict, step: dict, precision: str, alone: bool = False,
             fraction: float = H100_FRACTION) -> tuple[float, float]:
    """(seconds, busy seconds) of one training step on an H100: max(FLOPs at their rates, bytes /
    bandwidth, LAUNCH_FLOOR), busy without the floor. `cost`: the task's flops.step_cost, whose
    bytes hold the optimizer's 3 weight passes, replaced by `step` (flops.optimizer_step_cost) with
    the entry's state and matrix work (Newton-Schulz in bf16, Shampoo's and SOAP's products in the
    weights' fp32, SVD and QR at DECOMPOSITION_FRACTION). `alone`: the optimizer's step without the
    model's forward and backward (the step-time rule), floored at a tenth of LAUNCH_FLOOR."""
    from workflows.engine.flops import OPTIMIZER_PASSES
    weights = "fp64" if precision == "fp64" else "fp32"
    model = 0.0 if alone else 1.0
    param_bytes = sum(math.prod(shape) * torch.empty((), dtype=dtype).element_size()
                      for _, shape, dtype in cost["parameters"])
    compute = (model * cost["flops_per_step"] / (fraction * H100_PEAKS[precision])
               + step.get("matmul", 0.0) / (fraction * H100_PEAKS[weights])
               + step.get("bf16", 0.0) / (fraction * H100_PEAKS["bf16"])
               + step.get("decomposition", 0.0) / (DECOMPOSITION_FRACTION * H100_PEAKS[weights]))
    moved = model * (cost["bytes_per_step"] - OPTIMIZER_PASSES * param_bytes) + step["bytes"]
    busy = max(compute, moved / H100_BANDWIDTH)
    return max(busy, LAUNCH_FLOOR * (0.1 if alone else 1.0)), busy


def gpu_estimate(step_costs: dict, config: dict | None = None, fraction: float = H100_FRACTION) -> dict:
    """A calibration without a GPU: {task: {"seconds_per_step", "run_overhead"}} (the model's step
    in bf16, no optimizer), and with the profile's `config` per job {"jobs": {(rule, optimizer):
    (seconds, busy seconds) a step}} from `gpu_step`: each job's precision and its optimizer's step.
    An estimate, stated as one wherever it is printed (GPU_ESTIMATE)."""
    from workflows.engine.flops import optimizer_step_cost
    found = {t: {"seconds_per_step": max(c["flops_per_step"] / (fraction * H100_BF16_PEAK), LAUNCH_FLOOR),
                 "run_overhead": GPU_RUN_OVERHEAD, "jobs": {}} for t, c in step_costs.items()}
    steps = {}
    for rule, task, optimizer in jobs(config) if config else []:
        if task not in step_costs:
            continue
        if (task, optimizer) not in steps:
            steps[task, optimizer] = optimizer_step_cost(task, optimizer, step_costs[task]["parameters"])
        alone = measurements.get(rule).step_share < 1
        step = gpu_step(step_costs[task], steps[task, optimizer], job_precision(config, rule, task), alone, fraction)
        if rule == "precision":   # the weighted mean of its fp32 arm and the half-precision ones
            share = precision_fp32_share(config, task)
            fp32 = gpu_step(step_costs[task], steps[task, optimizer], "fp32", alone, fraction)
            step = tuple((1 - share) * h + share * f for h, f in zip(step, fp32))
        found[task]["jobs"][rule, optimizer] = step
    return found


def plan_rows(config: dict, calibration: dict | None = None, step_costs: dict | None = None,
              job_list=None) -> list[dict]:
    """One row per rule and task: jobs, runs, steps, FLOPs and bytes per step (`step_costs`: task ->
    flops.step_cost), estimated job seconds (`calibration`: task -> calibrate's entry; a GPU
    estimate's per-job step seconds where it has them, and the seconds the GPU is busy); of
    `job_list` ((rule, task, optimizer): the jobs a run with additions ran), every job by default."""
    rows, per_job = {}, {}
    for rule, task, optimizer in (jobs(config) if job_list is None else job_list):
        runs, steps = runs_and_steps(config, rule, task, optimizer)
        row = rows.setdefault((rule, task), {"rule": rule, "task": task, "jobs": 0, "runs": 0, "steps": 0,
                                             "flops_per_step": None, "bytes_per_step": None,
                                             "estimated_seconds": None})
        row["jobs"] += 1
        row["runs"] += runs
        row["steps"] += steps
        per_job.setdefault((rule, task), []).append((optimizer, steps))
    for (rule, task), row in rows.items():
        if step_costs and task in step_costs:
            row["flops_per_step"] = step_costs[task]["flops_per_step"]
            row["bytes_per_step"] = step_costs[task]["bytes_per_step"]
        if calibration and task in calibration:
            c = calibration[task]
            fixed = estimate_seconds(rule, row["jobs"], row["runs"], 0, c)
            timed = [c["jobs"].get((rule, o)) for o, _ in per_job[rule, task]] if c.get("jobs") else [None]
            if None in timed:   # a calibration of the task's step: the optimizer's is in it
                row["estimated_seconds"] = estimate_seconds(rule, row["jobs"], row["runs"], row["steps"], c)
            else:
                row["estimated_seconds"] = fixed + sum(n * s for (_, n), (s, _) in zip(per_job[rule, task], timed))
                row["busy_seconds"] = sum(n * b for (_, n), (_, b) in zip(per_job[rule, task], timed))
    return list(rows.values())


def gpu_pool(path: Path = GPU_PROFILE) -> int:
    """How many jobs share the GPU at once: the Snakemake profile's `gpu` resource (every job asks 1)."""
    import yaml
    return int(yaml.safe_load(path.read_text())["resources"]["gpu"])


def gpu_wall_seconds(rows: list[dict], pool: int | None = None) -> float:
    """The plan's wall time on one GPU shared by `pool` jobs (gpu_pool()): a timing job holds every
    core, so it runs alone; the others `pool` at a time, but no faster than the GPU does their work
    one after another (their busy seconds: sharing overlaps launches and start-up, not FLOPs)."""
    pool = gpu_pool() if pool is None else pool
    timed = [r for r in rows if r["estimated_seconds"] is not None]
    alone = [r for r in timed if measurements.get(r["rule"]).holds_every_core]
    shared = [r for r in timed if not measurements.get(r["rule"]).holds_every_core]
    return (sum(r["estimated_seconds"] for r in alone)
            + max(sum(r["estimated_seconds"] for r in shared) / pool, sum(r.get("busy_seconds", 0.0) for r in shared)))


def held_cores(rule: str, threads: int, cores: int) -> int:
    """The cores a job of `rule` holds: every core for a timing measurement, else the profile's threads
    (aggregate and report: one thread)."""
    timing = rule in measurements.names() and measurements.get(rule).holds_every_core
    return cores if timing else min(cores, threads)


def wall_seconds(rows: list[dict], threads: int, cores: int) -> float:
    """The plan's wall time: timing rules hold every core, the others the profile's threads."""
    total = 0.0
    for row in rows:
        if row["estimated_seconds"] is None:
            continue
        total += row["estimated_seconds"] * held_cores(row["rule"], threads, cores) / cores
    return total
