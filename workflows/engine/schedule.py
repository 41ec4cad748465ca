"""Learning-rate schedules: the factor that multiplies every parameter group's peak lr at a step.

    constant  1 after the warm-up
    cosine    floor + (1 - floor) * (1 + cos(pi * p)) / 2,  p = (s - warmup) / (steps - 1 - warmup)
    wsd       warmup-stable-decay (Hu et al. 2024, MiniCPM): 1 until the last `decay` share of the
              steps, then linear to `floor` at the last step

with a linear warm-up (s + 1) / warmup over the first `warmup` steps (s counts from 0). Every
schedule ends at `floor` times the peak on the last step (constant: at the peak). The harness sets
`group["lr"] = peak * factor(step)` on every parameter group before each step, so an optimizer
that read its lr only at construction would not follow a schedule (tests/test_schedule.py checks
every registry entry).

A profile states one schedule (`schedule:` in its config) for its tuning and final runs; an entry
that brings its own (schedule-free AdamW: `takes_schedule=False`) runs at a constant lr instead,
with its own warm-up.
"""
from __future__ import annotations

import math

import tasks

SCHEDULES = ("constant", "cosine", "wsd")


def check(schedule: str, warmup: int, floor: float, decay: float) -> None:
    """Raises ValueError naming the bad value and what is valid."""
    if schedule not in SCHEDULES:
        raise ValueError(f"schedule {schedule!r}; valid: {', '.join(SCHEDULES)}")
    if not (isinstance(warmup, int) and warmup >= 0):
        raise ValueError(f"warmup={warmup!r}: must be an integer number of steps >= 0")
    if not (math.isfinite(floor) and 0 <= floor <= 1):
        raise ValueError(f"lr_floor={floor!r}: must be in [0, 1] (a share of the peak lr)")
    if not (math.isfinite(decay) and 0 < decay <= 1):
        raise ValueError(f"decay={decay!r}: must be in (0, 1] (the share of the steps that decay)")


def factor(step: int, steps: int, warmup: int = 0, schedule: str = "constant", floor: float = 0.0,
           decay: float = 0.2) -> float:
    """The multiplier of the peak lr at `step` (0-based) of a run of `steps` steps."""
    if step < warmup:
        return (step + 1) / warmup
    if schedule == "constant":
        return 1.0
    if schedule == "cosine":
        progress = min(1.0, (step - warmup) / max(1, steps - 1 - warmup))
        return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * progress))
    if schedule == "wsd":
        start = max(warmup, steps - max(1, round(decay * steps)))   # first step that decays
        if step < start:
            return 1.0
        progress = min(1.0, (step - start + 1) / max(1, steps - start))
        return 1.0 - (1.0 - floor) * progress
    raise ValueError(f"schedule {schedule!r}; valid: {', '.join(SCHEDULES)}")


def for_task(task: str, profile_schedule: dict | None) -> dict:
    """The schedule a task's runs take: the task's own where it fixes one (the schedule ablation,
    cnn-digits-constant-lr), else the profile's."""
    return tasks.get(task).schedule or profile_schedule or {}


# The schedule of a run nothing schedules (an entry that brings its own, the rest of a task's
# partial `schedule`, a measurement called without a profile): the peak lr from the first step.
# A profile's `schedule:` never falls back to it: its defaults are the schema's, filled in by
# workflows.engine.config. `decay` acts only in wsd.
CONSTANT = {"name": "constant", "warmup": 0.0, "floor": 0.0, "decay": 0.2}


def run_options(profile_schedule: dict, steps: int, takes_schedule: bool = True) -> dict:
    """RunConfig keyword arguments for a profile's `schedule:` mapping (warm-up given as a share of
    the steps) in a run of `steps` steps; an entry that takes no schedule runs at constant lr."""
    s = {**CONSTANT, **profile_schedule} if takes_schedule else CONSTANT
    return {"schedule": s["name"], "warmup": int(round(s["warmup"] * steps)),
            "lr_floor": float(s["floor"]), "decay": float(s["decay"])}
