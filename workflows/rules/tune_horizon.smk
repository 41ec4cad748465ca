# The tuning horizon check: the protocol again at the task's full horizon, beside the profile's
# selection (the tune record), for the pairs of `tuning.horizon_check`.


rule tune_horizon:
    input:
        sources,
        summary=tune_summary,
    output:
        measurement_records("tune_horizon"),
    log:
        f"{LOGS}/tune_horizon/{{task}}/{{optimizer}}.log",
    benchmark:
        f"{BENCHMARKS}/tune_horizon/{{task}}/{{optimizer}}.tsv"
    params:
        tuning=lambda w: task_tuning(config["tuning"], w.task),
        schedule=config["schedule"],
        precision=lambda w: config["train_precision"].get(w.task, "fp32"),
        size=config["size"],
        device=config["device"],
        **SHARED_PARAMS,
        runs=RUNS,
    threads: config["threads"]
    resources:
        gpu=GPU,
    script:
        "../scripts/tune_horizon.py"
