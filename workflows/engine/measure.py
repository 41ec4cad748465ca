"""The pipeline's measurements, one function a job: each returns result records for the writer.

- `tune`: the hyperparameter search of one optimizer on one task (trials × tuning seeds), and its selection;
- `final`: a run at the selected hyperparameters (or the entry's defaults), one record per final seed;
- `stability`: loss × c against lr × c over a log grid of c, at the selected learning rate;
- `steptime`: optimizer.step() alone, interleaved with torch AdamW in the same process;
- `loop_options`: what the training-loop options cost: time per training step (forward, backward,
  step) against the plain loop, activation memory, and whether the loss curve changes.
"""
from __future__ import annotations

import copy
import math
import statistics

import torch

import optimizers
import tasks
from workflows.engine import protocol, schedule as schedules
from workflows.engine.harness import RunConfig, StepTimer, record_header, split_batch, summarise_times, train


def _compact(run: dict) -> dict:
    """A run inside a sweep record: everything but the environment, which the sweep holds once."""
    return {k: v for k, v in run.items() if k not in ("environment", "schema_version")}


def tune(task: str, optimizer: str, size: str, tuning: dict, schedule: dict | None = None,
         device: str = "cpu", threads: int = 1, precision: str = "fp32") -> dict:
    """The search of `protocol`: every trial of the optimizer's design on every tuning seed, at
    `tuning["steps_fraction"]` of the task's steps, under the profile's `schedule` (stretched to
    those steps), then the selection on the mean over seeds."""
    spec = optimizers.get(optimizer)
    steps = max(1, int(tasks.get(task).size(size)["steps"] * tuning.get("steps_fraction", 1.0)))
    options = schedules.run_options(schedules.for_task(task, schedule), steps, spec.takes_schedule)
    runs = []
    for i, hparams in enumerate(protocol.trials(task, optimizer, tuning)):
        for seed in tuning["seeds"]:
            cfg = RunConfig(task, optimizer, size=size, seed=seed, steps=steps, hparams=hparams, device=device,
                            precision=precision, **options)
            runs.append({**_compact(train(cfg, threads=threads)), "trial": i, "tuned": hparams})
    space = protocol.search_space(task, optimizer, tuning)
    config = dict(task=task, optimizer=optimizer, size=size, seeds=list(tuning["seeds"]), trials=tuning["trials"],
                  space={k: list(v) for k, v in space.items()}, steps=steps, schedule=options, device=device,
                  precision=precision)
    return {**record_header("sweep", config, device, threads), "measurement": "tune",
            "selection": protocol.select(runs, task), "runs": runs}


def final(task: str, optimizer: str, size: str, seed: int, hparams: dict | None, schedule: dict | None = None,
          device="cpu", threads=1, progress=False, checkpoint=None, checkpoint_every=0, monitor_every=0,
          precision: str = "fp32") -> dict:
    """One final run at the tuned `hparams` (the sweep's selection, lr included) under the
    profile's `schedule`, in `precision` (autocast; the profile's `train_precision`); with `hparams=None`, the self-tuning track's run: every hyperparameter
    at the entry's (library's or paper's) defaults and the task's, no tuning, the same schedule."""
    steps = tasks.get(task).size(size)["steps"]
    options = schedules.run_options(schedules.for_task(task, schedule), steps, optimizers.get(optimizer).takes_schedule)
    record = train(RunConfig(task, optimizer, size=size, seed=seed, hparams=dict(hparams or {}),
                             device=device, monitor_every=monitor_every, precision=precision, **options),
                   threads=threads, progress=progress, checkpoint=checkpoint, checkpoint_every=checkpoint_every)
    return {**record, "track": "defaults" if hparams is None else "tuned"}


def stability(task: str, optimizer: str, size: str, hparams: dict, scales: list[float], seed: int = 0,
              dtype: str = "float32", device="cpu", threads=1, schedule: dict | None = None) -> dict:
    """For each c: one run with loss × c (lr fixed), one with lr × c (loss fixed), at the tuned
    `hparams` under the profile's `schedule`, as the final runs."""
    steps = tasks.get(task).size(size)["steps"]
    options = schedules.run_options(schedules.for_task(task, schedule), steps, optimizers.get(optimizer).takes_schedule)
    lr = hparams["lr"]
    rows = []
    for axis in ("loss", "lr"):
        for c in scales:
            cfg = RunConfig(task, optimizer, size=size, seed=seed, hparams=hparams, dtype=dtype,
                            device=device, **options, **{f"{axis}_scale": c})
            run = train(cfg, threads=threads)
            rows.append({"axis": axis, "scale": c, "final_metric": run["final_metric"],
                         "diverged": run["diverged"], "diverge_reason": run["diverge_reason"],
                         "loss": run["curves"]["loss"]})
    # in fp32 (or fp64) whatever the profile's train_precision: this is the algebra of loss x c,
    # the precision measurement is the mixed-precision one
    config = dict(task=task, optimizer=optimizer, size=size, lr=lr, hparams=dict(hparams), scales=scales,
                  seed=seed, dtype=dtype, device=device, schedule=options)
    return {**record_header("stability", config, device, threads), "runs": rows,
            "metric": tasks.get(task).metric.name}


def steptime(task: str, optimizer: str, size: str, steps: int, warmup: int, rounds: int,
             device="cpu", threads=1, baseline: str = "adamw") -> dict:
    """Median optimizer.step() time of `optimizer` and of `baseline` on the same parameters and
    gradients, measured in alternating rounds so that drift in machine speed hits both alike."""
    if threads:
        torch.set_num_threads(threads)
    dev = torch.device(device)
    problem = tasks.get(task).make(size, seed=0, device=dev)
    model = problem.model.to(dev)
    loss = problem.loss(model, problem.batch(0))
    loss.backward()  # fixed gradients: the step is timed alone, forward and backward excluded

    def setup(name):
        m = copy.deepcopy(model)
        for p, q in zip(model.parameters(), m.parameters()):
            q.grad = None if p.grad is None else p.grad.clone()
        opt = optimizers.build_optimizer(name, m.named_parameters())
        for _ in range(warmup):
            opt.step()
        return opt

    names = [optimizer] if optimizer == baseline else [optimizer, baseline]
    opts = {n: setup(n) for n in names}
    times = {n: [] for n in names}
    for _ in range(rounds):
        for n in names:
            timer = StepTimer(dev)
            for _ in range(steps):
                with timer:
                    opts[n].step()
            times[n] += timer.times()
    summary = {n: summarise_times(t, warmup=0) for n, t in times.items()}   # warmed up above
    med = {n: s["median"] for n, s in summary.items()}
    # The roofline: the bytes the step must move over the bandwidth measured here, now.
    from workflows.engine import roofline
    bandwidth = roofline.bandwidth_bytes_per_s(dev, n_bytes=(64 if dev.type == "cpu" else 1024) * 2**20)
    floor = roofline.floor_seconds(optimizer, 0, bandwidth, named_params=list(model.named_parameters()))
    config = dict(task=task, optimizer=optimizer, size=size, steps=steps, warmup=warmup, rounds=rounds,
                  baseline=baseline, device=device)
    return {**record_header("steptime", config, device, threads),
            "median_seconds": med[optimizer], "baseline_median_seconds": med[baseline],
            "ratio_to_baseline": med[optimizer] / med[baseline],
            "p10_seconds": summary[optimizer]["p10"], "p90_seconds": summary[optimizer]["p90"],
            "n_params": sum(p.numel() for p in model.parameters()),
            "bandwidth_bytes_per_s": bandwidth, "floor_seconds": floor,
            "percent_of_floor": 100 * floor / med[optimizer]}


def saved_activation_bytes(problem, model, accumulate: int = 1) -> int:
    """Bytes of the tensors autograd keeps from one forward for the backward (each storage once).
    Device-independent, and exact where peak memory on CPU is not measurable. Under activation
    checkpointing it counts what is kept outside the checkpointed blocks; their inputs, and the one
    block recomputed at a time during backward, come on top (on CUDA the peak memory says all)."""
    seen = {}

    def pack(t):
        storage = t.untyped_storage()
        seen[(storage.data_ptr(), t.device)] = storage.nbytes()
        return t

    batch = split_batch(problem.batch(0), accumulate)[0]   # one micro-batch is alive at a time
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        loss = problem.loss(model, batch)
    loss.backward()
    model.zero_grad(set_to_none=True)
    return sum(seen.values())


def loop_options(task: str, optimizer: str, size: str, steps: int, rounds: int, monitor_every: int,
                 device="cpu", threads=1) -> dict:
    """Each training-loop option against the plain loop, in alternating rounds (drift hits all
    alike): seconds per training step (the mean over a round's steps, so that a monitor working
    every k steps is counted; the median over rounds), activation bytes, peak CUDA memory, and the
    largest relative gap of its loss curve to the plain one (0: the option leaves the maths alone)."""
    provides = tasks.get(task).provides
    variants = {"plain": {}, f"monitor every {monitor_every}": {"monitor_every": monitor_every},
                "clip by norm 1.0": {"clip_norm": 1.0}, "warm-up 10 + cosine": {"warmup": 10, "schedule": "cosine"}}
    try:   # full-batch tasks (a step index for a batch) have nothing to accumulate
        split_batch(tasks.get(task).make(size, seed=0).batch(0), 2)
        variants["accumulate 2 micro-batches"] = {"accumulate": 2}
    except ValueError:
        pass
    if "activation_checkpointing" in provides:
        variants["activation checkpointing"] = {"activation_checkpointing": True}
    step_seconds = {name: [] for name in variants}
    results = {}
    for _ in range(rounds):
        for name, options in variants.items():
            cfg = RunConfig(task, optimizer, size=size, seed=0, steps=steps, eval_every=steps, device=device, **options)
            run = train(cfg, threads=threads)
            wall = run["curves"]["time"]
            step_seconds[name].append((wall[-1] - wall[1]) / (len(wall) - 2))   # from step 2: warm-up
            results[name] = run
    rows = []
    plain = statistics.median(step_seconds["plain"])
    for name, options in variants.items():
        problem = tasks.get(task).make(size, seed=0, device=torch.device(device))
        model = problem.model.to(device)
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
