# What the LM must beat, on its own test data: byte n-grams (Kneser-Ney, orders 1-5) and compressors
# (lzma, zlib). One CPU job per LM family (workflows/engine/measurements/baselines.py: which task, and
# the optimizer it is filed under); it trains nothing and reads only the task's data.


rule baselines:
    input:
        lambda w: os.path.relpath(tasks.source(w.task)),
    output:
        measurement_records("baselines"),
    log:
        f"{LOGS}/baselines/{{task}}/{{optimizer}}.log",
    benchmark:
        f"{BENCHMARKS}/baselines/{{task}}/{{optimizer}}.tsv"
    params:
        size=config["size"],
    threads: 1
    script:
        "../scripts/baselines.py"
