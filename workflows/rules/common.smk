# Validation before any job runs, wildcard constraints, and input functions.
import os
import re

import yaml
from snakemake.utils import validate

import optimizers
import tasks
from workflows.engine import cost, pairs, plan
from workflows.engine.config import check_config, check_profile_given, check_schema, coerce

# Every error of a config is raised here, before any job runs, naming the key and the bad value.
check_profile_given(config, workflow.overwrite_configfiles)
with open(os.path.join(workflow.basedir, "workflows/schemas/config.schema.yaml")) as f:
    CONFIG_SCHEMA = yaml.safe_load(f)
config.update(coerce(config, CONFIG_SCHEMA))   # --config final_seeds=[0,1] gives strings in lists
CONFIG_SOURCE = ", ".join(map(str, workflow.overwrite_configfiles)) or "workflows/config/cpu.yaml, the default"
if workflow.config_settings.config:
    CONFIG_SOURCE += " with --config " + " ".join(f"{k}=..." for k in workflow.config_settings.config)
check_schema(config, CONFIG_SCHEMA, CONFIG_SOURCE)
validate(config, "../schemas/config.schema.yaml", set_default=True)  # fills the schema's defaults
check_config(config)

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
