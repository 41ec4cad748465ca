"""`steptime`: optimizer.step() alone, interleaved with a baseline (torch AdamW) in the same
process, against the roofline floor of the bytes the step moves (one record, kind "steptime")."""
from __future__ import annotations

import copy

import torch

import optimizers
import tasks
from workflows.engine import device as device_module, roofline
from workflows.engine.device import StepTimer
from workflows.engine.harness import record_header, summarise_times
from workflows.engine.measurements import Measurement
from workflows.engine.pairs import pairs


def run(task: str, optimizer: str, size: str, steps: int, warmup: int, rounds: int,
        device="cpu", threads=1, baseline: str = "adamw", fp32_precision: str = "ieee", deterministic: bool = True) -> dict:
    """Median optimizer.step() time of `optimizer` and of `baseline` on the same parameters and
    gradients, measured in alternating rounds so that drift in machine speed hits both alike."""
    if threads:
        torch.set_num_threads(threads)
    accel = device_module.get(device)
    if device != "cpu":   # no CPU kernel reads either setting: a CPU record stays as it was
        accel.configure(fp32_precision, deterministic)
    dev = accel.tensors
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
            timer = StepTimer(accel)
            for _ in range(steps):
                with timer:
                    opts[n].step()
            times[n] += timer.times()
    summary = {n: summarise_times(t, warmup=0) for n, t in times.items()}   # warmed up above
    med = {n: s["median"] for n, s in summary.items()}
    # The roofline: the bytes the step must move over the bandwidth measured here, now.
    bandwidth = roofline.bandwidth_bytes_per_s(accel, n_bytes=(64 if dev.type == "cpu" else 1024) * 2**20)
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


def rows(r: dict) -> dict:
    c = r["config"]
    return {"steptime": [{"task": c["task"], "optimizer": c["optimizer"], "baseline": c["baseline"],
                          "median_seconds": r["median_seconds"], "p10_seconds": r["p10_seconds"],
                          "p90_seconds": r["p90_seconds"], "baseline_median_seconds": r["baseline_median_seconds"],
                          "ratio_to_baseline": r["ratio_to_baseline"], "n_params": r["n_params"],
                          "bandwidth_GBps": r["bandwidth_bytes_per_s"] / 1e9,
                          "percent_of_floor": r["percent_of_floor"]}]}


def cost(config: dict, task: str, optimizer: str) -> tuple[int, int]:
    """No training run: the optimizer steps of both optimizers, warm-up included."""
    st = config["steptime"]
    return 0, 2 * (st["warmup"] + st["steps"] * st["rounds"])


MEASUREMENT = Measurement(name="steptime", kind="steptime", run=run, rows=rows, tables=("steptime",),
                          jobs=lambda config: pairs(config, config["steptime"]["tasks"],
                                                    config["steptime"].get("optimizers")),
                          cost=cost, holds_every_core=True, step_share=0.1)   # step() against a training step
