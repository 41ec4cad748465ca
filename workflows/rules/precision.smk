# Mixed precision against fp32: bf16, fp16 unscaled, fp16 over static loss scales, fp16 with
# dynamic scaling, at the selected hyperparameters, over the profile's precision seeds; for a
# scale-invariant optimizer (AdamW) the stress condition, loss × stress_scale, in fp32, fp16
# unscaled and fp16 dynamic.


rule precision:
    input:
        sources,
        summary=tune_summary,
    output:
        measurement_records("precision"),
    log:
        f"{LOGS}/precision/{{task}}/{{optimizer}}.log",
    benchmark:
        f"{BENCHMARKS}/precision/{{task}}/{{optimizer}}.tsv"
    params:
        precision=lambda w: plan.job_settings(config, "precision", w.task),
        size=config["size"],
        device=config["device"],
        **SHARED_PARAMS,
        schedule=config["schedule"],
        runs=RUNS,
    threads: config["threads"]
    resources:
        gpu=GPU,
    script:
        "../scripts/precision.py"
