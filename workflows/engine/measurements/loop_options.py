"""`loop_options`: what the training-loop options cost against the plain loop: time per training
step (forward, backward, step), activation memory, and whether the loss curve changes (one record,
kind "loop_options", per task of the profile's `loop_options:` list, with its one optimizer).

One more row, "bare loop", is the harness's own cost: the same task, optimizer, seed and steps in a
loop with nothing but the training (the batch, zero_grad, forward, backward, optimizer.step(); no
lr schedule, check, timer, clock or synchronisation a step, the time read once over the steps
after the warm-up, with a synchronisation at each end), in the same rounds. Its `ratio_to_plain`
is bare / plain, so the harness's overhead is 1 / ratio − 1 (goal ≤ 5 %), and its loss gap to
plain is 0 where the harness's arithmetic is the bare loop's (its checks only read)."""
from __future__ import annotations

import math
import statistics

import torch

import tasks
from workflows.engine import device as device_module
from workflows.engine.flops import saved_activation_bytes
from workflows.engine.harness import RunConfig, record_header, setup, split_batch, train
from workflows.engine.measurements import Measurement

VARIANTS = 7       # at most: plain, monitor, clipping, warm-up, accumulation, activation checkpointing, bare loop
BARE = "bare loop"
WARMUP = 2         # steps not timed, in the harness's rows (wall[1] is their end) and in the bare loop's


def bare_loop(cfg: RunConfig, threads: int) -> tuple[float, list[float], int | None]:
    """Seconds per step of the loop with nothing but the training (the module's docstring), over the
    steps after `WARMUP`, its losses (read after the timing) and peak device memory. The run is built as the harness
    builds it (`setup`: the same model, data, hyperparameters and optimizer) and at the plain row's
    constant lr, so its losses are the plain run's."""
    torch.set_num_threads(threads)
    run = setup(cfg)
    model, opt, problem, losses = run.model, run.opt, run.problem, []
    run.accel.reset_peak_memory()

    def step(i):
        batch = problem.batch(i)
        opt.zero_grad(set_to_none=True)
        loss = problem.loss(model, batch)
        loss.backward()
        opt.step()
        losses.append(loss.detach())
    for i in range(WARMUP):
        step(i)
    t0 = run.accel.wall_clock()
    for i in range(WARMUP, run.steps):
        step(i)
    seconds = (run.accel.wall_clock() - t0) / (run.steps - WARMUP)
    return seconds, [float(x) for x in losses], run.accel.peak_memory()


def variants(task: str, size: str, monitor_every: int) -> dict[str, dict]:
    """The RunConfig options of each loop option the task can take, by its name in the table."""
    found = {"plain": {}, f"monitor every {monitor_every}": {"monitor_every": monitor_every},
             "clip by norm 1.0": {"clip_norm": 1.0}, "warm-up 10 + cosine": {"warmup": 10, "schedule": "cosine"}}
    try:   # full-batch tasks (a step index for a batch) have nothing to accumulate
        split_batch(tasks.get(task).make(size, seed=0).batch(0), 2)
        found["accumulate 2 micro-batches"] = {"accumulate": 2}
    except ValueError:
        pass
    if "activation_checkpointing" in tasks.get(task).provides:
        found["activation checkpointing"] = {"activation_checkpointing": True}
    return found


def run(task: str, optimizer: str, size: str, steps: int, rounds: int, monitor_every: int,
        device="cpu", threads=1, fp32_precision: str = "ieee", deterministic: bool = True) -> dict:
    """Each training-loop option against the plain loop, in alternating rounds (drift hits all
    alike): seconds per training step (the mean over a round's steps, so that a monitor working
    every k steps is counted; the median over rounds), activation bytes, peak CUDA memory, and the
    largest relative gap of its loss curve to the plain one (0: the option leaves the maths alone)."""
    if steps <= WARMUP + 1:
        raise ValueError(f"loop_options steps={steps}: must be > {WARMUP + 1} (the first {WARMUP} are warm-up)")
    options_of = variants(task, size, monitor_every)
    step_seconds = {name: [] for name in [*options_of, BARE]}
    results = {}
    for _ in range(rounds):
        for name, options in options_of.items():
            cfg = RunConfig(task, optimizer, size=size, seed=0, steps=steps, eval_every=steps, device=device,
                            fp32_precision=fp32_precision, deterministic=deterministic, **options)
            r = train(cfg, threads=threads)
            wall = r["curves"]["time"]
            step_seconds[name].append((wall[-1] - wall[WARMUP - 1]) / (len(wall) - WARMUP))
            results[name] = r
        seconds, bare_losses, bare_peak = bare_loop(cfg_of(task, optimizer, size, steps, device, fp32_precision,
                                                deterministic), threads)
        step_seconds[BARE].append(seconds)
    rows = []
    plain = statistics.median(step_seconds["plain"])
    bare = statistics.median(step_seconds[BARE])
    rows.append({"option": BARE, "median_step_seconds": bare, "ratio_to_plain": bare / plain,
                 "activation_bytes": None, "peak_memory_bytes": bare_peak,   # activations: the plain row's
                 "max_loss_gap_to_plain": loss_gap(bare_losses, results["plain"]["curves"]["loss"]),
                 "diverged": not all(math.isfinite(x) for x in bare_losses)})
    for name, options in options_of.items():
        dev = device_module.get(device).tensors
        problem = tasks.get(task).make(size, seed=0, device=dev)
        model = problem.model.to(dev)
        if options.get("activation_checkpointing"):
            problem.activation_checkpointing(model)
        model.train()
        median = statistics.median(step_seconds[name])
        gap = loss_gap(results[name]["curves"]["loss"], results["plain"]["curves"]["loss"])
        rows.append({"option": name, "median_step_seconds": median, "ratio_to_plain": median / plain,
                     "activation_bytes": saved_activation_bytes(problem, model, options.get("accumulate", 1)),
                     "peak_memory_bytes": results[name]["peak_memory_bytes"],
                     "max_loss_gap_to_plain": gap, "diverged": results[name]["diverged"]})
    rows[0]["activation_bytes"] = next(r for r in rows if r["option"] == "plain")["activation_bytes"]
    config = dict(task=task, optimizer=optimizer, size=size, steps=steps, rounds=rounds,
                  monitor_every=monitor_every, device=device)
    return {**record_header("loop_options", config, device, threads), "options": rows,
            "n_params": results["plain"]["task"]["n_params"]}


def cfg_of(task, optimizer, size, steps, device, fp32_precision, deterministic) -> RunConfig:
    """The plain row's config (the bare loop's)."""
    return RunConfig(task, optimizer, size=size, seed=0, steps=steps, eval_every=steps, device=device,
                     fp32_precision=fp32_precision, deterministic=deterministic)


def loss_gap(losses: list[float], plain: list[float]) -> float:
    """The largest relative gap between a loss curve and the plain one (NaN: nothing to compare)."""
    return max((abs(a - b) / max(abs(b), 1e-300) for a, b in zip(losses, plain)), default=math.nan)


def harness_overhead(r: dict) -> float:
    """The harness's time a step beyond the bare loop's, as a share of the bare loop's."""
    bare = next(row for row in r["options"] if row["option"] == BARE)
    return 1 / bare["ratio_to_plain"] - 1


def rows(r: dict) -> dict:
    c = r["config"]
    return {"loop_options": [{"task": c["task"], "optimizer": c["optimizer"], "n_params": r["n_params"], **row}
                             for row in r["options"]]}


def cost(config: dict, task: str, optimizer: str) -> tuple[int, int]:
    lo = config["loop_options"]
    runs = VARIANTS * lo["rounds"]
    return runs, runs * lo["steps"]


MEASUREMENT = Measurement(name="loop_options", kind="loop_options", run=run, rows=rows, tables=("loop_options",),
                          jobs=lambda config: [(t, config["loop_options"]["optimizer"])
                                               for t in config["loop_options"]["tasks"]],
                          cost=cost, holds_every_core=True)
