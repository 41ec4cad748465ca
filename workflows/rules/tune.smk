# Hyperparameter search: one in-process sweep per task x optimizer over the same trial budget.

# What a sweep runs with: the protocol's keys of `tuning:`, not the studies' (horizon_check,
# repeats), so that naming a study's pairs reruns no sweep.
TUNING_STUDIES = ("horizon_check", "repeats")
SWEEP_TUNING = {k: v for k, v in config["tuning"].items() if k not in TUNING_STUDIES}


rule tune:
    input:
        sources,
    output:
        measurement_records("tune"),
    log:
        f"{LOGS}/tune/{{task}}/{{optimizer}}.log",
    benchmark:
        f"{BENCHMARKS}/tune/{{task}}/{{optimizer}}.tsv"
    params:
        tuning=SWEEP_TUNING,
        schedule=config["schedule"],
        precision=lambda w: config["train_precision"].get(w.task, "fp32"),
        size=config["size"],
        device=config["device"],
        **SHARED_PARAMS,
    threads: config["threads"]
    resources:
        gpu=GPU,
    script:
        "../scripts/tune.py"
