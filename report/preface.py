"""The report's head: its title, how its numbers were made, and the machine that made them."""
from __future__ import annotations

from pathlib import Path

ENVIRONMENT = ("device", "device_name", "device_capability", "device_memory_bytes", "cuda", "cudnn", "cpu",
               "cpu_flags", "cpu_capability", "cpu_count", "threads", "platform", "python", "torch",
               "git_commit", "compute_seconds")


def environment_block(env: dict) -> list[str]:
    if not env:
        return ["_no environment recorded_"]
    pk = env.get("packages", {})
    lines = ["| | |", "|---|---|"]
    for key in ENVIRONMENT:
        if env.get(key) is not None:
            lines.append(f"| {key} | {env[key]} |")
    lines.append("| packages | " + ", ".join(f"{k} {v}" for k, v in sorted(pk.items())) + " |")
    return lines


def section(tables: dict, out: Path) -> list[str]:
    """The title names the profile: the report's directory (report/<profile>/)."""
    profile = Path(out).name
    return [f"# optbench report: `{profile}` profile", "",
            f"Generated from `results/tables/{profile}/` alone (CSV files beside the figures). Each "
            "final run uses the hyperparameters selected by the tuning sweep (see Tuning) on seeds disjoint "
            "from the final seeds, under the profile's schedule; confidence intervals are 95 % Student t intervals of the mean over "
            "non-diverged seeds (coverage 95 % for normal seed-to-seed noise, checked by simulation in "
            "tests/test_stats.py); diverged runs are counted, not dropped.", "",
            "## Environment", ""] + environment_block(tables["environment"]) + [""]
