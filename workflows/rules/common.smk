# Validation before any job runs, wildcard constraints, and input functions.
import os
import re

import optimizers
import tasks
from workflows.engine import config as profile_config
from workflows.engine import cost, pairs, plan

# Every error of a config is raised here, before any job runs, naming the key and the bad value;
# `optbench plan` runs the same check (workflows.engine.config.load).
profile_config.check(config, workflow.overwrite_configfiles, list(workflow.config_settings.config or {}))

PROFILE = config["profile"]
RUNS = f"results/runs/{PROFILE}"
TABLES = f"results/tables/{PROFILE}"
LOGS = f"logs/{PROFILE}"
BENCHMARKS = f"results/benchmarks/{PROFILE}"   # one TSV a job: wall, CPU time, peak memory
GPU = 1 if config["device"].startswith("cuda") else 0


wildcard_constraints:
    task="|".join(map(re.escape, config["tasks"])),
    optimizer="|".join(map(re.escape, optimizers.names())),
    seed=r"\d+",


def sources(w):
    """The files that define this job's task and optimizer: editing one reruns only its jobs."""
    found = [os.path.relpath(optimizers.source(w.optimizer))]
    spec = optimizers.get(w.optimizer)
    if spec.fallback:
        found.append(os.path.relpath(optimizers.source(spec.fallback)))
    found.append(os.path.relpath(tasks.source(w.task)))
    return found


def optimizers_for(task):
    return pairs.optimizers_for(config, task)


SKIPPED = [(t, o, why) for t in config["tasks"] for o in optimizers_for(t)
           if (why := pairs.compatible(t, optimizers.get(o)))]


def tune_summary(w):
    return f"{RUNS}/tune/{w.task}/{w.optimizer}.json"


from workflows.engine import measurements, records


def measurement_records(name, task="{task}", optimizer="{optimizer}"):
    """The records one job of measurement `name` writes (records.record_path), one a final seed for
    a per-seed measurement; with the default wildcards, the rule's output pattern."""
    if measurements.get(name).per_seed:
        return [records.record_path(RUNS, name, task, optimizer, s) for s in config["final_seeds"]]
    return [records.record_path(RUNS, name, task, optimizer)]
