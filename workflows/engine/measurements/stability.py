"""`stability`: loss × c against lr × c over a log grid of c, at the selected learning rate (one
record, kind "stability", per task × optimizer of the profile's `stability:` list)."""
from __future__ import annotations

import math

import numpy as np

import optimizers
import tasks
from workflows.engine import schedule as schedules
from workflows.engine.harness import RunConfig, record_header, train
from workflows.engine.measurements import Measurement
from workflows.engine.pairs import pairs
from workflows.engine.plan import settings


def run(task: str, optimizer: str, size: str, hparams: dict, scales: list[float], seed: int = 0,
        dtype: str = "float32", device="cpu", threads=1, schedule: dict | None = None,
        fp32_precision: str = "ieee", deterministic: bool = True) -> dict:
    """For each c: one run with loss × c (lr fixed), one with lr × c (loss fixed), at the tuned
    `hparams` under the profile's `schedule`, as the final runs."""
    steps = tasks.get(task).size(size)["steps"]
    options = schedules.run_options(schedules.for_task(task, schedule), steps, optimizers.get(optimizer).takes_schedule)
    lr = hparams["lr"]
    runs = []
    for axis in ("loss", "lr"):
        for c in scales:
            cfg = RunConfig(task, optimizer, size=size, seed=seed, hparams=hparams, dtype=dtype,
                            device=device, fp32_precision=fp32_precision, deterministic=deterministic, **options,
                            **{f"{axis}_scale": c})
            r = train(cfg, threads=threads)
            runs.append({"axis": axis, "scale": c, "final_metric": r["final_metric"],
                         "diverged": r["diverged"], "diverge_reason": r["diverge_reason"],
                         "loss": r["curves"]["loss"]})
    # in fp32 (or fp64) whatever the profile's train_precision: this is the algebra of loss x c,
    # the precision measurement is the mixed-precision one
    config = dict(task=task, optimizer=optimizer, size=size, lr=lr, hparams=dict(hparams), scales=scales,
                  seed=seed, dtype=dtype, device=device, schedule=options)
    return {**record_header("stability", config, device, threads), "runs": runs,
            "metric": tasks.get(task).metric.name}


def _rel_gap(a: list[float], b: list[float]) -> float:
    """Largest relative difference between two loss curves; inf if their lengths differ."""
    if len(a) != len(b) or not a:
        return math.inf
    x, y = np.asarray(a, float), np.asarray(b, float)
    with np.errstate(invalid="ignore", divide="ignore"):
        gap = np.abs(x - y) / np.maximum(np.abs(y), 1e-300)
    return float(np.nan_to_num(gap, nan=math.inf).max())


def stability_rows(r: dict) -> list[dict]:
    c = r["config"]
    runs = r["runs"]
    unscaled = {run["axis"]: run["loss"] for run in runs if run["scale"] == 1.0}
    by_lr = {run["scale"]: run["loss"] for run in runs if run["axis"] == "lr"}
    rows = []
    for run in runs:
        rows.append({
            "task": c["task"], "optimizer": c["optimizer"], "axis": run["axis"], "scale": run["scale"],
            "lr": c["lr"], "final_metric": run["final_metric"], "diverged": run["diverged"],
            # loss x c compared with c = 1 (Adam's invariance) and with lr x c (SGD's equivalence)
            "gap_to_unscaled": _rel_gap(run["loss"], unscaled[run["axis"]]) if run["axis"] in unscaled else math.nan,
            "gap_to_lr_scaled": _rel_gap(run["loss"], by_lr[run["scale"]]) if run["axis"] == "loss" else math.nan,
        })
    return rows


def jobs(config: dict) -> list[tuple[str, str]]:
    return [(t, o) for t0 in config["stability"]["tasks"]
            for t, o in pairs(config, [t0], settings(config, "stability", t0)["optimizers"])]


def cost(config: dict, task: str, optimizer: str) -> tuple[int, int]:
    runs = 2 * len(settings(config, "stability", task)["scales"])
    return runs, runs * tasks.get(task).size(config["size"])["steps"]


MEASUREMENT = Measurement(name="stability", kind="stability", run=run,
                          rows=lambda r: {"stability": stability_rows(r)}, tables=("stability",),
                          jobs=jobs, cost=cost, reads_selection=True)
