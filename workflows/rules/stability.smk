# Loss x c against lr x c at the selected learning rate.


rule stability:
    input:
        sources,
        summary=tune_summary,
    output:
        measurement_records("stability"),
    log:
        f"{LOGS}/stability/{{task}}/{{optimizer}}.log",
    benchmark:
        f"{BENCHMARKS}/stability/{{task}}/{{optimizer}}.tsv"
    params:
        stability=lambda w: plan.job_settings(config, "stability", w.task),
        schedule=config["schedule"],
        size=config["size"],
        device=config["device"],
        **SHARED_PARAMS,
        runs=RUNS,
    threads: config["threads"]
    resources:
        gpu=GPU,
    script:
        "../scripts/stability.py"
