# Hyperparameter search: one in-process sweep per task x optimizer over the same trial budget.

from workflows.engine.measurements.tune import task_tuning


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
        tuning=lambda w: task_tuning(config["tuning"], w.task),
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
