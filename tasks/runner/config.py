"""A profile's config, checked before any job runs: what the JSON Schema
(workflows/schemas/config.schema.yaml) cannot say."""
from __future__ import annotations

import optimizers
import tasks


class ConfigError(ValueError):
    pass


def check_config(config: dict) -> None:
    """What the JSON Schema cannot say: names exist in the registries, seeds are disjoint, and the
    measurement task lists are subsets of the profile's tasks. Raises ConfigError naming the value."""
    def known(kind, given, valid):
        bad = [x for x in given if x not in valid]
        if bad:
            raise ConfigError(f"config {kind}: unknown {', '.join(map(repr, bad))}; valid: {', '.join(valid)}")

    known("tasks", config["tasks"], tasks.names())
    known("optimizers", config["optimizers"], optimizers.names())
    for task, names_ in config.get("task_optimizers", {}).items():
        known("task_optimizers keys", [task], config["tasks"])
        known(f"task_optimizers.{task}", names_, optimizers.names())
    known("steptime.optimizers", config["steptime"].get("optimizers", []), optimizers.names())
    for measurement in ("stability", "steptime", "loop_options"):
        if measurement in config:
            known(f"{measurement}.tasks", config[measurement]["tasks"], config["tasks"])
    if "loop_options" in config:
        name = config["loop_options"].get("optimizer", "adamw")
        known("loop_options.optimizer", [name], optimizers.names())
        for task in config["loop_options"]["tasks"]:
            why = tasks.compatible(tasks.get(task), optimizers.get(name))
            if why:
                raise ConfigError(f"config loop_options: {why}")
    overlap = sorted(set(config["tuning"]["seeds"]) & set(config["final_seeds"]))
    if overlap:
        raise ConfigError(f"config tuning.seeds and final_seeds share {overlap}: tuning seeds must be "
                          f"disjoint from the seeds the report is computed on")
    for name in config["optimizers"]:
        fallback = optimizers.get(name).fallback
        if fallback and fallback not in optimizers.names():
            raise ConfigError(f"optimizer {name!r} falls back to unknown {fallback!r}")
