# The repeated tuning study: the protocol again with each list of `tuning.repeats.seeds` in place of
# the tuning seeds, every repeat of a task x optimizer in one job.


rule tune_repeat:
    input:
        sources,
    output:
        measurement_records("tune_repeat"),
    log:
        f"{LOGS}/tune_repeat/{{task}}/{{optimizer}}.log",
    benchmark:
        f"{BENCHMARKS}/tune_repeat/{{task}}/{{optimizer}}.tsv"
    params:
        tuning=lambda w: task_tuning(config["tuning"], w.task),
        repeat_seeds=config["tuning"]["repeats"]["seeds"],
        schedule=config["schedule"],
        precision=lambda w: config["train_precision"].get(w.task, "fp32"),
        size=config["size"],
        device=config["device"],
        **SHARED_PARAMS,
    threads: config["threads"]
    resources:
        gpu=GPU,
    script:
        "../scripts/tune_repeat.py"
