"""What every report section writes: a figure saved under the report's figures/, a markdown
table, numbers formatted alike, and a claim's row. One place, so that the sections write alike
and the same tables give the same bytes (no date or version in a PNG)."""
from __future__ import annotations

import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

PNG = {"metadata": {"Software": None}, "dpi": 110}


def save(fig, out: Path, name: str) -> str:
    """Saves `fig` as `out`/figures/`name`.png, closes it, and returns its path in the report."""
    path = Path(out) / "figures" / f"{name}.png"
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, bbox_inches="tight", **PNG)
    plt.close(fig)
    return f"figures/{name}.png"


def md_table(df: pd.DataFrame) -> str:
    return df.to_markdown(index=False, disable_numparse=True) if len(df) else "_no rows_"


def fmt(x, digits=4) -> str:
    """A number in a section's table: `digits` significant digits, integers whole, – for NaN."""
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "–"
    if isinstance(x, float) and math.isinf(x):
        return "∞" if x > 0 else "−∞"
    if isinstance(x, (int, np.integer)):
        return str(int(x))
    return f"{x:.{digits}g}"


def short(x, digits=3) -> str:
    """A number in a claim's evidence: `digits` significant digits, – for NaN and infinities."""
    return "–" if x is None or (isinstance(x, float) and not math.isfinite(x)) else f"{x:.{digits}g}"
