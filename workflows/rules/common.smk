# Validation before any job runs, wildcard constraints, and input functions.
import os
import re

from snakemake.utils import validate

import optimizers
import tasks
from tasks.runner.config import check_config

validate(config, "../schemas/config.schema.yaml", set_default=True)
check_config(config)

PROFILE = config["profile"]
RUNS = f"results/runs/{PROFILE}"
TABLES = f"results/tables/{PROFILE}"
LOGS = f"logs/{PROFILE}"
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


def pairs(task_list=None, optimizer_list=None):
    """(task, optimizer) pairs to run; pairs that cannot run go to SKIPPED, with why."""
    tasks_ = config["tasks"] if task_list is None else task_list
    return [(t, o) for t in tasks_ for o in (optimizer_list or optimizers_for(t))
            if tasks.compatible(t, optimizers.get(o)) is None]


def optimizers_for(task):
    return config["task_optimizers"].get(task, config["optimizers"])


SKIPPED = [(t, o, why) for t in config["tasks"] for o in optimizers_for(t)
           if (why := tasks.compatible(t, optimizers.get(o)))]


def tune_summary(w):
    return f"{RUNS}/tune/{w.task}/{w.optimizer}.json"
