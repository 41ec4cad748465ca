"""`loop_options`: what the training-loop options cost against the plain loop: time per training
step (forward, backward, step), activation memory, and whether the loss curve changes (one record,
kind "loop_options", per task of the profile's `loop_options:` list, with its one optimizer)."""
from __future__ import annotations

import math
import statistics


import tasks
from workflows.engine import device as device_module
from workflows.engine.flops import saved_activation_bytes
from workflows.engine.harness import RunConfig, record_header, split_batch, train
from workflows.engine.measurements import Measurement

VARIANTS = 6       # at most: plain, monitor, clipping, warm-up, accumulation, activation checkpointing


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
    options_of = variants(task, size, monitor_every)
    step_seconds = {name: [] for name in options_of}
    results = {}
    for _ in range(rounds):
        for name, options in options_of.items():
            cfg = RunConfig(task, optimizer, size=size, seed=0, steps=steps, eval_every=steps, device=device,
                            fp32_precision=fp32_precision, deterministic=deterministic, **options)
            r = train(cfg, threads=threads)
            wall = r["curves"]["time"]
            step_seconds[name].append((wall[-1] - wall[1]) / (len(wall) - 2))   # from step 2: warm-up
            results[name] = r
    rows = []
    plain = statistics.median(step_seconds["plain"])
    for name, options in options_of.items():
        dev = device_module.get(device).tensors
        problem = tasks.get(task).make(size, seed=0, device=dev)
        model = problem.model.to(dev)
        if options.get("activation_checkpointing"):
            problem.activation_checkpointing(model)
        model.train()
        median = statistics.median(step_seconds[name])
        gap = max((abs(a - b) / max(abs(b), 1e-300) for a, b in zip(results[name]["curves"]["loss"],
                                                                   results["plain"]["curves"]["loss"])),
                  default=math.nan)
        rows.append({"option": name, "median_step_seconds": median, "ratio_to_plain": median / plain,
                     "activation_bytes": saved_activation_bytes(problem, model, options.get("accumulate", 1)),
                     "peak_memory_bytes": results[name]["peak_memory_bytes"],
                     "max_loss_gap_to_plain": gap, "diverged": results[name]["diverged"]})
    config = dict(task=task, optimizer=optimizer, size=size, steps=steps, rounds=rounds,
                  monitor_every=monitor_every, device=device)
    return {**record_header("loop_options", config, device, threads), "options": rows,
            "n_params": results["plain"]["task"]["n_params"]}


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
