"""The loop-options measurement's bare-loop row: the harness's own cost against a loop with nothing
but the training, on the same task and optimizer. No time is asserted (a loaded machine moves it);
what is asserted is that the row is there, its ratio is a usable number, and its loss curve is the
plain row's to the bit (same process, same arithmetic: the harness's checks only read)."""
import math

import pandas as pd

from report import loop_options as report_loop_options
from workflows.engine.measurements import loop_options


def test_the_bare_loop_row_has_the_plain_rows_losses_and_a_finite_positive_ratio(tmp_path):
    r = loop_options.run("cnn-digits-bn", "adamw", "smoke", steps=5, rounds=2, monitor_every=2)
    rows = {row["option"]: row for row in r["options"]}
    bare = rows[loop_options.BARE]
    assert math.isfinite(bare["ratio_to_plain"]) and bare["ratio_to_plain"] > 0
    assert bare["max_loss_gap_to_plain"] == 0 and not bare["diverged"]
    assert bare["activation_bytes"] == rows["plain"]["activation_bytes"]
    overhead = loop_options.harness_overhead(r)
    assert math.isfinite(overhead) and overhead == 1 / bare["ratio_to_plain"] - 1
    table = pd.DataFrame(loop_options.rows(r)["loop_options"])
    lines = report_loop_options.section({"loop_options": table}, tmp_path)
    assert any(line.startswith("- `cnn-digits-bn` / `adamw`: harness overhead") for line in lines)
    assert any("| bare loop " in line for line in lines)
