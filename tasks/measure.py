"""The pipeline's measurements, one function a job: each returns result records for the writer.

- `tune`: the learning-rate sweep of one optimizer on one task (tuning seeds), and its selection;
- `final`: runs at the selected learning rate, one record per final seed;
- `stability`: loss × c against lr × c over a log grid of c, at the selected learning rate;
- `steptime`: optimizer.step() alone, interleaved with torch AdamW in the same process.
"""
from __future__ import annotations

import copy
import statistics

import torch

import optimizers
import tasks
from tasks import environment, protocol, records
from tasks.harness import RunConfig, StepTimer, train


def _header(kind: str, config: dict, device: str, threads: int) -> dict:
    return {"schema_version": records.SCHEMA_VERSION, "kind": kind, "config": config,
            "config_hash": environment.config_hash(config),
            "environment": environment.environment(torch.device(device), threads)}


def _compact(run: dict) -> dict:
    """A run inside a sweep record: everything but the environment, which the sweep holds once."""
    return {k: v for k, v in run.items() if k not in ("environment", "schema_version")}


def tune(task: str, optimizer: str, size: str, seeds: list[int], grid_points: int, refine: int = 0,
         device: str = "cpu", threads: int = 1, steps_fraction: float = 1.0) -> dict:
    """The learning-rate search of `protocol`: a coarse grid, then `refine` rounds around the best."""
    steps = max(1, int(tasks.get(task).size(size)["steps"] * steps_fraction))
    runs = []

    def evaluate(lrs):
        for lr in lrs:
            for seed in seeds:
                cfg = RunConfig(task, optimizer, size=size, seed=seed, steps=steps, hparams={"lr": lr}, device=device)
                runs.append(_compact(train(cfg, threads=threads)))

    evaluate(protocol.initial_grid(task, optimizer, grid_points))
    for _ in range(refine):
        selection = protocol.select(runs, task)
        evaluate(protocol.refinement(selection["grid"], selection["lr"]))
    config = dict(task=task, optimizer=optimizer, size=size, seeds=seeds, grid_points=grid_points,
                  refine=refine, steps=steps, device=device)
    return {**_header("sweep", config, device, threads), "measurement": "tune",
            "selection": protocol.select(runs, task), "runs": runs}


def final(task: str, optimizer: str, size: str, seed: int, lr: float, device="cpu", threads=1,
          progress=False, checkpoint=None, checkpoint_every=0, monitor_every=0) -> dict:
    return train(RunConfig(task, optimizer, size=size, seed=seed, hparams={"lr": lr}, device=device,
                           monitor_every=monitor_every),
                 threads=threads, progress=progress, checkpoint=checkpoint, checkpoint_every=checkpoint_every)


def stability(task: str, optimizer: str, size: str, lr: float, scales: list[float], seed: int = 0,
              dtype: str = "float32", device="cpu", threads=1) -> dict:
    """For each c: one run with loss × c (lr fixed), one with lr × c (loss fixed)."""
    rows = []
    for axis in ("loss", "lr"):
        for c in scales:
            cfg = RunConfig(task, optimizer, size=size, seed=seed, hparams={"lr": lr}, dtype=dtype,
                            device=device, **{f"{axis}_scale": c})
            run = train(cfg, threads=threads)
            rows.append({"axis": axis, "scale": c, "final_metric": run["final_metric"],
                         "diverged": run["diverged"], "diverge_reason": run["diverge_reason"],
                         "loss": run["curves"]["loss"]})
    config = dict(task=task, optimizer=optimizer, size=size, lr=lr, scales=scales, seed=seed,
                  dtype=dtype, device=device)
    return {**_header("stability", config, device, threads), "runs": rows,
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
    med = {n: statistics.median(t) for n, t in times.items()}
    # The roofline: the bytes the step must move over the bandwidth measured here, now.
    from report import roofline
    bandwidth = roofline.bandwidth_bytes_per_s(dev, n_bytes=(64 if dev.type == "cpu" else 1024) * 2**20)
    floor = roofline.floor_seconds(optimizer, 0, bandwidth, named_params=list(model.named_parameters()))
    config = dict(task=task, optimizer=optimizer, size=size, steps=steps, warmup=warmup, rounds=rounds,
                  baseline=baseline, device=device)
    return {**_header("steptime", config, device, threads),
            "median_seconds": med[optimizer], "baseline_median_seconds": med[baseline],
            "ratio_to_baseline": med[optimizer] / med[baseline],
            "p10_seconds": statistics.quantiles(times[optimizer], n=10)[0] if len(times[optimizer]) > 1 else med[optimizer],
            "p90_seconds": statistics.quantiles(times[optimizer], n=10)[-1] if len(times[optimizer]) > 1 else med[optimizer],
            "n_params": sum(p.numel() for p in model.parameters()),
            "bandwidth_bytes_per_s": bandwidth, "floor_seconds": floor,
            "percent_of_floor": 100 * floor / med[optimizer]}
