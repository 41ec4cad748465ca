# The report: markdown, PNG figures and the environment, from results/tables/<report>/ alone (REPORT:
# the profile, or a derived name for an overridden configuration, common.smk).


rule report:
    input:
        rules.publish_tables.output,
    output:
        f"report/{REPORT}/README.md",
    log:
        f"logs/{REPORT}/report.log",
    benchmark:
        f"results/benchmarks/{REPORT}/report.tsv"
    script:
        "../scripts/report.py"
