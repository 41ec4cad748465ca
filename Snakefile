# optbench: every optimizer on every task, measured, and a report generated from the results.
#   snakemake --cores all                                    # default profile (cpu)
#   snakemake --cores all --configfile workflows/config/smoke.yaml
# The profile names the results (results/runs/<profile>/) and the report (report/<profile>/).
from snakemake.utils import min_version

min_version("8.0")


# The default profile only when none is given: Snakemake merges config files key by key, so a
# default loaded under --configfile would leak its keys (task lists, step-time optimizers) into it.
if "profile" not in config:

    configfile: "workflows/config/cpu.yaml"


include: "workflows/rules/common.smk"
include: "workflows/rules/tune.smk"
include: "workflows/rules/train.smk"
include: "workflows/rules/stability.smk"
include: "workflows/rules/steptime.smk"
include: "workflows/rules/loop_options.smk"
include: "workflows/rules/aggregate.smk"
include: "workflows/rules/report.smk"


rule all:
    input:
        f"report/{PROFILE}/README.md",
    default_target: True
