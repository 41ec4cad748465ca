"""A profile's plan before it runs: its jobs (the same list the Snakefile builds its DAG from), runs
and training steps per rule and task, FLOPs and bytes per step, and an estimated wall time.

On the machine it runs on, one model for every rule (`estimate_seconds`): a job costs start-up +
its setup + runs × a run overhead (+ a final-type run's own, for the measurements that write run
records: final and defaults) + steps × the optimizer's seconds per step (× the rule's step share;
× the precision factor for the precision study). What a rule runs enters through its jobs, runs
and steps alone: no rule has a factor of its own. The constants come from a calibration: before a
run, a short timed run of each task here (`calibrate`); after one, the profile's own records
(`recorded_calibration`):

- seconds per step, per task and optimizer (on lm-stdlib at cpu size Muon's step is 1.5 times
  AdamW's: the task's mean would mis-plan the loop-options job, AdamW's alone), pooled over every
  run the tables time (the final and self-tuning tracks, the precision study's fp32 arms).
  Pooled, because a job shares the machine (2 one-thread jobs on 2 cores: the L3 cache and the
  memory bandwidth) with whatever runs beside it, and that moves its step by up to 1.8 times
  (schedule-free AdamW on the LM: 0.046 s a step in its final runs, 0.026 s in its self-tuning
  ones): one job's runs meet one co-runner, the pool many, as a rule's many jobs do;
- the setup, per job: the time outside start-up and steps of the jobs that train no run (the
  step-time rule: the task's data, the first optimizer, which imports torch._dynamo, the record),
  the machine's mean for a task without such jobs (at most the time its final-type jobs spent
  outside steps), and that time whole in a profile without step-time jobs;
- the final-type run's overhead: what only the final and self-tuning runs do (the test split,
  checkpoints, the store's record written and checked, their evaluations), per run, from those
  jobs' time outside start-up, setup and training seconds;
- the precision study's factor over the fp32 step, from its own records.

Calibrated, then (they reproduce their own seconds: final and defaults together, since they pool):
final, defaults, precision (its factor) and steptime (its setup). Predicted from them: tune,
tune_horizon, tune_repeat, stability, loop_options and baselines. Not charged: a tuning or study
run's evaluations (2-13 % of its steps' time on the cpu tasks), the baselines' n-gram counts and
compressions (about 2 s: its plan is its setup, a floor), and the monitor's share of a pooled step
(1-8 % at monitor_every 10, in the final-type runs only). A run that diverges stops there while
the plan counts its every step (the stability study's lr × 10⁴ runs: the plan is an upper bound).
Start-up is the measured import of torch, transformers and the runner (2.8 s on the 2-core machine
the cpu profile is published from). The step-time rule runs no training step: its optimizer steps
are counted in `steps` and estimated at a tenth of a training step's time. Wall time is the jobs'
seconds × their cores over the profile's cores (perfect packing: a floor).

Without a GPU (`--h100`, `gpu_estimate`) a job's step is costed from FLOPs and bytes: the model's
forward and backward at 40 % of the H100's datasheet peak for the job's precision (bf16 autocast,
IEEE fp32, fp64; the precision study's one fp32 arm weighted in), the optimizer's own step from the
entry's `step_flops` (Newton-Schulz in bf16, Shampoo's and SOAP's products in fp32, SVD and QR at 1 %
of the fp32 peak) and its bytes, no faster than the memory bandwidth and a 3 ms launch floor. Its wall
time (`gpu_wall_seconds`) has the GPU pool of workflows/profiles/gpu as its parallelism: timing jobs
alone, the others `pool` at a time but no faster than the GPU's busy seconds one after another. An
estimate (GPU_ESTIMATE says so wherever it is printed), never a measurement.

Several GPUs: `shard_jobs` splits the jobs into disjoint shares of pairs, one Snakemake a GPU
(OPTBENCH_SHARD, workflows/rules/common.smk)."""
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


SHARD_VARIABLE = "OPTBENCH_SHARD"   # i/n: the share of the profile's pairs one Snakemake of n trains


def shard_spec(value: str | None) -> tuple[int, int] | None:
    """(i, n) of OPTBENCH_SHARD=i/n (0 <= i < n); None where unset or empty."""
    if not value:
        return None
    i, _, n = value.partition("/")
    if not (i.isdigit() and n.isdigit() and int(i) < int(n)):
        raise ValueError(f"{SHARD_VARIABLE}={value!r}; valid: i/n with 0 <= i < n (0/2 and 1/2: two shards), "
                         f"or unset for the whole profile")
    return int(i), int(n)


def shard_jobs(job_list, shard: tuple[int, int] | None) -> list[tuple[str, str, str]]:
    """The jobs of one shard: every job of its pairs. A pair's jobs stay together (tune, then the
    jobs that read its selection), and so does a pair that runs at another's selection with that
    one (`tune.selection_source`: MuonClip on lm-stdlib-qk with lm-stdlib's Muon), so shards share
    no job and no output. Units are dealt out in (task, optimizer) order, one each in turn, so each
    shard gets about 1/n of every task's pairs (balanced where a task's pairs cost alike)."""
    if shard is None:
        return list(job_list)
    from workflows.engine.measurements.tune import selection_source
    i, n = shard
    order = {pair: k for k, pair in enumerate(sorted({selection_source(t, o) for _, t, o in job_list}))}
    return [job for job in job_list if order[selection_source(job[1], job[2])] % n == i]


def runs_and_steps(config: dict, rule: str, task: str, optimizer: str) -> tuple[int, int]:
    """(runs, steps) of one job; steps are training steps, the step-time rule's optimizer steps."""
    return measurements.get(rule).cost(config, task, optimizer)


def calibrate(task_names, size: str, device: str = "cpu", threads: int = 1, steps: int = 12) -> dict:
    """{task: {"seconds_per_step", "run_overhead", "setup_overhead"}} from one timed run of `steps`
    steps of each task (AdamW, or the task's first optimizer that can run): seconds per step from the
    run's own step clock (from step 2: the first steps warm up), setup = its time before step 0 (the
    task, model and optimizer built: what every job pays once), run overhead = the run's wall time
    less its setup and steps (its evaluations). The tasks share this process, so only the first
    pays the first optimizer's import that every job pays: the later tasks' setups are low by it."""
    from workflows.engine.harness import RunConfig, train
    found = {}
    for task in task_names:
        optimizer = next(o for o in ["adamw", *optimizers.names()]
                         if compatible(task, optimizers.get(o)) is None)
        n = max(3, min(steps, tasks.get(task).size(size)["steps"]))
        started = []
        t0 = time.perf_counter()
        run = train(RunConfig(task, optimizer, size=size, seed=0, steps=n, device=device), threads=threads,
                    hooks={"start": lambda info: started.append(time.perf_counter())})
        wall = time.perf_counter() - t0
        clock = run["curves"]["time"]
        per_step = (clock[-1] - clock[1]) / (len(clock) - 2)
        setup = started[0] - t0
        found[task] = {"seconds_per_step": per_step, "run_overhead": max(0.0, wall - setup - n * per_step),
                       "setup_overhead": setup}
    return found


def recorded_calibration(run_rows: list[dict], job_rows: list[dict], precision_rows: list[dict] = (),
                         config: dict | None = None) -> dict:
    """`calibrate`'s {task: {...}} from a profile's records, on the machine that ran them, with no
    training here (the model: the module's docstring; `estimate_seconds` applies it):

    - "seconds_per_step" and "optimizer_seconds_per_step" (a job's steps are its optimizer's): the
      training seconds over the steps of every run the tables time (`timed_runs`: the runs table's
      every track, the precision table's fp32 arms), pooled: one job's runs meet one co-runner, the
      pool meets many (on the published cpu profile Muon's final runs took 0.059 s a step on the
      LM, its self-tuning runs 0.041 s, its stability job, whose steps no table times, 0.045 s at
      most: its seconds less start-up and setup over its runs' steps but a diverged one's);
    - "setup_overhead", per job: what a job pays outside start-up and steps whatever it runs (the
      task's data, the first optimizer, which imports torch._dynamo, the record), from the jobs that
      train no run (the step-time rule: `step_share` < 1; its optimizer steps at `step_share` of a
      training step, counted from `config`, none without it); a task without such jobs takes the
      mean of the tasks that have them (the setup is mostly the machine's: 1.7 s of it is the
      first optimizer's import on the 2-core machine, the task's data 0-3 s), at most its
      final-type jobs' time outside steps; with no such job anywhere, that time whole;
    - "final_run_overhead", per run of the measurements that write run records (`track`: final and
      defaults): their jobs' time outside start-up, setup and their runs' training seconds, per
      run: what only those runs do (the test split, checkpoints, the store's record written and
      checked, and their evaluations); 0 where no such job was benchmarked;
    - "run_overhead": 0 (a tuning or study run's evaluations, 2-13 % of its steps' time on the cpu
      tasks, are not charged: the calibrating records cannot tell them from the setup);
    - "precision_factor", with the precision table's rows: the precision study's seconds per step
      over the pooled fp32 step of the same optimizers (autocast on a CPU casts every operand:
      bf16 and fp16 steps are several times an fp32 one; probes add an fp32 backward).

    A task without a timed run has no calibration."""
    timed = timed_runs(run_rows, precision_rows)
    outside = _final_outside(run_rows, job_rows)
    found = {}
    for task in sorted({r["task"] for r in timed}):
        runs = [r for r in timed if r["task"] == task]
        steps = sum(r["steps"] for r in runs)
        if not steps:
            continue
        by_optimizer = {}
        for r in runs:
            by_optimizer.setdefault(r["optimizer"], []).append(r)
        found[task] = {"seconds_per_step": sum(r["train_seconds"] for r in runs) / steps, "run_overhead": 0.0,
                       "optimizer_seconds_per_step": {
                           o: sum(r["train_seconds"] for r in rs) / sum(r["steps"] for r in rs)
                           for o, rs in sorted(by_optimizer.items()) if sum(r["steps"] for r in rs)}}
    setups = {t: s for t in found if (s := _setup_overhead(t, job_rows, found[t], config)) is not None}
    machine = sum(setups.values()) / len(setups) if setups else None
    for task, c in found.items():
        jobs, runs, seconds = outside.get(task, (0, 0, 0.0))
        per_job = max(0.0, seconds / jobs) if jobs else None
        setup = setups.get(task, machine if per_job is None or machine is None else min(machine, per_job))
        c["setup_overhead"] = setup if setup is not None else (per_job or 0.0)
        c["final_run_overhead"] = max(0.0, (seconds - jobs * c["setup_overhead"]) / runs) if runs else 0.0
        mixed = [r for r in precision_rows if r["task"] == task and r["steps_done"] == r["steps_done"]]
        fp32 = c["optimizer_seconds_per_step"]
        if sum(r["steps_done"] for r in mixed):
            c["precision_factor"] = (sum(r["train_seconds"] for r in mixed)
                                     / sum(r["steps_done"] * fp32.get(r["optimizer"], c["seconds_per_step"])
                                           for r in mixed))
    return found


def timed_runs(run_rows: list[dict], precision_rows: list[dict] = ()) -> list[dict]:
    """{task, optimizer, train_seconds, steps} of every run whose training seconds a table holds at
    the harness's fp32 step: the runs table's (every track: final, defaults) and the precision
    table's fp32 arms without loss scaling (a loss scale changes no step's cost). Rows without
    steps or seconds (a run the table could not time) are left out."""
    rows = [{"task": r["task"], "optimizer": r["optimizer"], "train_seconds": r["train_seconds"], "steps": r["steps"]}
            for r in run_rows]
    rows += [{"task": r["task"], "optimizer": r["optimizer"], "train_seconds": r["train_seconds"],
              "steps": r["steps_done"]} for r in precision_rows
             if r.get("precision") == "fp32" and r.get("loss_scaling") == "none"]
    return [r for r in rows if r["steps"] == r["steps"] and r["train_seconds"] == r["train_seconds"] and r["steps"]]


def _final_outside(run_rows: list[dict], job_rows: list[dict]) -> dict:
    """{task: (jobs, runs, seconds)} of the benchmarked jobs of the measurements that write run
    records (`track`): their wall seconds less start-up and their runs' training seconds. A job
    whose runs the table lacks (its seeds taken from the store elsewhere) is left out."""
    found = {}
    for j in job_rows:
        if j["s"] != j["s"] or j["rule"] not in measurements.names() or measurements.get(j["rule"]).track is None:
            continue
        track = measurements.get(j["rule"]).track
        runs = [r for r in run_rows if (r["track"], r["task"], r["optimizer"]) == (track, j["task"], j["optimizer"])
                and r["train_seconds"] == r["train_seconds"]]
        if not runs:
            continue
        jobs, n, seconds = found.get(j["task"], (0, 0, 0.0))
        found[j["task"]] = (jobs + 1, n + len(runs),
                            seconds + j["s"] - STARTUP_SECONDS - sum(r["train_seconds"] for r in runs))
    return found


def _setup_overhead(task: str, job_rows: list[dict], calibration: dict, config: dict | None) -> float | None:
    """The mean time outside start-up and steps of the task's benchmarked jobs that train no run
    (`recorded_calibration`); None where there are none."""
    setups = []
    for j in job_rows:
        if (j["task"] != task or j["s"] != j["s"] or j["rule"] not in measurements.names()
                or measurements.get(j["rule"]).step_share >= 1):
            continue
        steps = runs_and_steps(config, j["rule"], task, j["optimizer"])[1] if config else 0
        setups.append(j["s"] - STARTUP_SECONDS - steps * step_seconds(j["rule"], calibration, j["optimizer"]))
    return max(0.0, sum(setups) / len(setups)) if setups else None


def table_rows(path) -> list[dict]:
    """A table's rows as dicts (numbers as numbers); none where the table is absent or empty."""
    import pandas as pd
    try:
        return pd.read_csv(path).to_dict("records")
    except (FileNotFoundError, pd.errors.EmptyDataError):
        return []


def published_check(tables_dir) -> list[dict]:
    """The plan against what a published run measured, per rule: the plan's estimate of the jobs,
    runs and steps the run had (its plan.csv, per rule and task), calibrated from its own records
    (`recorded_calibration` of its runs, cost and precision tables and its provenance.json's
    configuration), beside the jobs' measured seconds (cost.csv): rows of rule, planned_seconds,
    measured_seconds, plan_over_measured. A row's steps are shared evenly among its benchmarked
    jobs, each at its optimizer's step (a rule's jobs of one task run the same steps, but for the
    one trial of a self-tuning entry's tuning). Calibrated: final and defaults together (their runs'
    steps, pooled with the precision study's fp32 arms, and their jobs' time outside steps), the
    precision study's factor, the step-time jobs' setup; predicted: tune, tune_horizon,
    tune_repeat, stability, loop_options, baselines (the module's docstring)."""
    import json
    tables_dir = Path(tables_dir)
    cost_rows = table_rows(tables_dir / "cost.csv")
    provenance = tables_dir / "provenance.json"
    config = json.loads(provenance.read_text()).get("config") if provenance.exists() else None
    if config:   # a key added since the run publishes its default, as the run had it
        from workflows.engine.config import fill_defaults, schema
        config = fill_defaults(config, schema())
    calibration = recorded_calibration(table_rows(tables_dir / "runs.csv"), cost_rows,
                                       table_rows(tables_dir / "precision.csv"), config)
    planned, measured = {}, {}
    for r in table_rows(tables_dir / "plan.csv"):
        if r["task"] not in calibration:
            continue
        c = calibration[r["task"]]
        ran = [j["optimizer"] for j in cost_rows if (j["rule"], j["task"]) == (r["rule"], r["task"])] or [None]
        planned[r["rule"]] = (planned.get(r["rule"], 0.0) + estimate_seconds(r["rule"], r["jobs"], r["runs"], 0, c)
                              + sum(r["steps"] / len(ran) * step_seconds(r["rule"], c, o) for o in ran))
    for r in cost_rows:
        if r["task"] in calibration:
            measured[r["rule"]] = measured.get(r["rule"], 0.0) + r["s"]
    return [{"rule": rule, "planned_seconds": planned[rule], "measured_seconds": measured[rule],
             "plan_over_measured": planned[rule] / measured[rule]}
            for rule in sorted(set(planned) & set(measured))]


def step_seconds(rule: str, calibration: dict, optimizer: str | None = None) -> float:
    """Seconds of one of the rule's steps on the calibrated machine: the optimizer's training step
    where the calibration has it (else the task's), × the rule's step share (× the precision factor
    for the precision study, where the calibration has one)."""
    c = calibration
    per_step = c.get("optimizer_seconds_per_step", {}).get(optimizer, c["seconds_per_step"])
    per_step *= measurements.get(rule).step_share
    if rule == "precision":
        per_step *= c.get("precision_factor", 1.0)
    return per_step


def estimate_seconds(rule: str, jobs: int, runs: int, steps: int, calibration: dict,
                     optimizer: str | None = None) -> float:
    """A rule's jobs of one task (of one optimizer, where given) on the calibrated machine: start-up
    and the setup per job, the run overhead per run (and the final-type run's own, for the
    measurements that write run records), and the steps at `step_seconds`. One model for every
    rule: what a rule runs enters through its jobs, runs and steps alone."""
    c = calibration
    per_run = c["run_overhead"] + (c.get("final_run_overhead", 0.0) if measurements.get(rule).track else 0.0)
    return (jobs * (STARTUP_SECONDS + c.get("setup_overhead", 0.0)) + runs * per_run
            + steps * step_seconds(rule, c, optimizer))


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
            if None in timed:   # a calibration of the step: the task's, or each optimizer's where it has them
                row["estimated_seconds"] = fixed + sum(n * step_seconds(rule, c, o) for o, n in per_job[rule, task])
            else:
                row["estimated_seconds"] = fixed + sum(n * s for (_, n), (s, _) in zip(per_job[rule, task], timed))
                row["busy_seconds"] = sum(n * b for (_, n), (_, b) in zip(per_job[rule, task], timed))
    return list(rows.values())


def aggregation_rows(config: dict, run_rows: list[dict], job_rows: list[dict], precision_rows: list[dict],
                     job_list) -> list[dict]:
    """The plan that aggregation writes (plan.csv), as `optbench plan --calibrate` makes it but
    calibrated from the records just tabled (`recorded_calibration`; no training here), of
    `job_list`, the jobs run here. FLOPs and bytes are counted on the CPU whatever the profile's
    device: the counts do not depend on it, and aggregation needs no device (on SLURM it runs on a
    CPU partition). The gpu-full LM's count takes minutes on a CPU; the cpu and gpu profiles', seconds."""
    from workflows.engine import flops
    calibration = recorded_calibration(run_rows, job_rows, precision_rows, config)
    step_costs = {t: flops.step_cost(t, config["size"], "cpu") for t in sorted({t for _, t, _ in job_list})}
    return plan_rows(config, calibration, step_costs, job_list)


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
