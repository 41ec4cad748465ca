r"""How much memory training a large model takes: parameters, gradients, optimizer state, master weights.

    breakdown(70e9, "adam", "mixed")   # bytes per component
    table()                            # tidy DataFrame over sizes x optimizers x components
    seed_table_70b()                   # seed 001's 70B table, row by row, against ours
    optbench memory --params 70e9 [--optimizer NAME] [--precision fp32|mixed]   # workflows.engine.cli

Conventions (bytes per parameter; GB = 1e9 bytes):

============  ==========  ==========  ==================================  ================
precision     parameters  gradients   optimizer state                     master weights
============  ==========  ==========  ==================================  ================
``fp32``      4 (fp32)    4 (fp32)    registry model at float32           none
``mixed``     2 (fp16 or  2 (fp16 or  registry model at float32: the      4 (fp32)
              bf16)       bf16)       optimizer steps the fp32 master
                                      copy, so its state is fp32 -- or,
                                      for 8-bit optimizers, whatever
                                      their memory model says
============  ==========  ==========  ==================================  ================

Optimizer state per parameter comes from the registry's analytic model, ``spec.state_bytes(shape,
dtype)``, which is exact per tensor (tests compare it with the measured state of built
optimizers). A model's state depends on its tensor shapes, which a parameter count does not
give, so the model is evaluated on a representative large hidden matrix, :data:`REPRESENTATIVE`
= (4096, 4096) float32, and divided by its element count: the figure is *bytes per parameter at
that shape*. Per-tensor constants -- the 0-d ``step`` tensor torch keeps for each parameter
tensor (4 B) -- are not per-parameter quantities; they are split off (the model evaluated on an
empty tensor of the same rank) and reported as ``state_bytes_per_tensor``: a 70B model has about
a thousand tensors, so they add kilobytes. Where the rate depends on the shape -- Adafactor's
factored second moment is :math:`a + b` numbers for an :math:`a \times b` matrix, O(n+m), not
O(nm); 8-bit optimizers keep float32 state for tensors under 4096 elements -- the ``note`` field
says so, with the rate at other shapes. State shared by all the parameters of an optimizer
(``shared_state_bytes``: bitsandbytes' 2 KB of quantisation maps) is a constant too, named in the
note and not counted. Entries that take only some parameters and hand the rest
to a fallback (SparseAdam: embeddings; Muon: hidden matrices) are charged for the representative
hidden matrix by whichever of the two would own it, and the note names both.

Seed 001's 70B table (fp16 params 140 GB + fp16 grads 140 GB + fp32 m 280 GB + fp32 v 280 GB =
840 GB) is ``breakdown(70e9, "adam", "mixed")`` without its ``master`` component
(``total_without_master``). What that table leaves out:

- the fp32 master copy of the weights, 4 B/param, which standard mixed-precision training with
  Adam keeps (the optimizer updates it; the fp16/bf16 weights are a rounded copy): 16 B/param in
  all, 1120 GB at 70B, so the seed's 840 GB omits 280 GB;
- activations (they scale with batch size, sequence length and checkpointing, not with the
  optimizer), temporary buffers (fp32 copies of gradients for unscaling or all-reduce buckets,
  the optimizer's own scratch tensors -- torch's foreach Adam allocates temporaries the size of
  a parameter group), allocator fragmentation and the framework's/CUDA context.

Neither does this calculator count them; every figure here is a lower bound on a device's need.
"""
from __future__ import annotations

import decimal
import math
import numbers

import torch

import optimizers

GB = 1e9
PRECISIONS = ("fp32", "mixed")
DEFAULT_PRECISION = "mixed"
REPRESENTATIVE = (4096, 4096)                  # a hidden matrix of a 7B-class transformer
REPRESENTATIVE_NAME = "layers.0.mlp.fc1.weight"  # what a parameter policy (`takes`) sees
PROBES = {"(1024, 1024)": (1024, 1024), "(16384, 16384)": (16384, 16384), "(1024,) vector": (1024,)}
SIZES = (125e6, 1.3e9, 7e9, 70e9)
MAX_PARAMS = 10**15                            # 1000T: a larger count is a typo
COMPONENTS = ("params", "grads", "state", "master")

# (parameter, gradient, master) bytes per parameter.
PRECISION_BYTES = {"fp32": (4, 4, 0), "mixed": (2, 2, 4)}

LEAVES_OUT = ("Leaves out: activations, temporary buffers (fp32 gradient copies, all-reduce buckets, "
              "optimizer scratch), allocator fragmentation and the framework/CUDA context; "
              "constants are not counted (a 4 B step tensor per parameter tensor, 8-bit quantisation maps).")
SEED_OMITS = ("Seed 001's 70B table (fp16 p + fp16 g + fp32 m, v = 840 GB) omits the fp32 master weights "
              "that mixed precision keeps (4 B/param: +280 GB, 1120 GB in all).")


def _rate(state_bytes, shape, dtype=torch.float32) -> tuple[float, float]:
    """(bytes per element, bytes per tensor) of one registry model at `shape` and `dtype`."""
    total = state_bytes(shape, dtype)
    try:
        constant = state_bytes(tuple(0 for _ in shape), dtype)
    except Exception:  # a model that cannot take an empty shape: no constant split off
        constant = 0
    return (total - constant) / math.prod(shape), float(constant)


def state_rate(optimizer: str, dtype: torch.dtype = torch.float32) -> dict:
    """Optimizer state in bytes per parameter at :data:`REPRESENTATIVE` (`dtype`), and a note.

    Returns ``{"bytes_per_param", "bytes_per_tensor", "owner", "note"}``; ``owner`` is the
    registry entry whose model was used (the fallback, when the entry's policy leaves hidden
    matrices to it).
    """
    spec = optimizers.get(optimizer)
    owner = spec
    notes = []
    if spec.takes is not None:
        fb = optimizers.get(spec.fallback)
        taken = spec.takes(REPRESENTATIVE_NAME, torch.empty(REPRESENTATIVE, device="meta"))
        owner = spec if taken else fb
        own_rate = _rate(spec.state_bytes, REPRESENTATIVE, dtype)[0]
        fb_rate = _rate(fb.state_bytes, REPRESENTATIVE, dtype)[0]
        notes.append(f"takes only some parameters ({'incl.' if taken else 'not'} hidden matrices), "
                     f"the rest go to {spec.fallback!r}: {own_rate:.4g} B/param on its own, "
                     f"{fb_rate:.4g} B/param on the fallback's; charged at the rate of {owner.name!r}")
    per_param, per_tensor = _rate(owner.state_bytes, REPRESENTATIVE, dtype)
    shared = getattr(owner, "shared_state_bytes", None)
    if shared:
        notes.append(f"plus {shared([(REPRESENTATIVE, dtype)]):g} B shared by all its parameters, once per "
                     f"optimizer (not counted)")
    probes = {label: _rate(owner.state_bytes, shape, dtype)[0] for label, shape in PROBES.items()}
    if any(not math.isclose(r, per_param, rel_tol=1e-2, abs_tol=1e-9) for r in probes.values()):
        notes.append("state depends on shape: " + ", ".join(
            [f"{per_param:.4g} B/param at {REPRESENTATIVE}"] + [f"{r:.4g} at {k}" for k, r in probes.items()]))
    return {"bytes_per_param": per_param, "bytes_per_tensor": per_tensor, "owner": owner.name,
            "note": "; ".join(notes)}


def breakdown(n_params: float, optimizer: str, precision: str = DEFAULT_PRECISION) -> dict:
    """Bytes of each component of training an `n_params`-parameter model with `optimizer`.

    Keys: ``params``, ``grads``, ``state``, ``master`` and ``total`` (their sum), in bytes;
    ``total_without_master`` (seed 001's convention); ``state_bytes_per_param`` and
    ``bytes_per_param``; ``state_bytes_per_tensor`` (per-tensor constants, not included);
    ``note`` (shape dependence, parameter policies; "" when none); and the inputs.
    """
    if precision not in PRECISION_BYTES:
        raise ValueError(f"unknown precision {precision!r}; valid: {', '.join(PRECISIONS)}")
    if not (isinstance(n_params, numbers.Real) and not isinstance(n_params, bool) and math.isfinite(n_params)
            and 1 <= n_params <= MAX_PARAMS and float(n_params).is_integer()):
        raise ValueError(f"invalid n_params={n_params!r}: not a parameter count; "
                         f"valid: a whole number from 1 to {MAX_PARAMS:.0e}")
    p_bytes, g_bytes, master_bytes = PRECISION_BYTES[precision]
    rate = state_rate(optimizer)
    out = {
        "n_params": n_params, "optimizer": optimizer, "precision": precision,
        "params": n_params * p_bytes,
        "grads": n_params * g_bytes,
        "state": n_params * rate["bytes_per_param"],
        "master": n_params * master_bytes,
    }
    out["total"] = out["params"] + out["grads"] + out["state"] + out["master"]
    out["total_without_master"] = out["total"] - out["master"]
    out["state_bytes_per_param"] = rate["bytes_per_param"]
    out["bytes_per_param"] = p_bytes + g_bytes + rate["bytes_per_param"] + master_bytes
    out["state_bytes_per_tensor"] = rate["bytes_per_tensor"]
    out["note"] = rate["note"]
    return out


def table(sizes=SIZES, optimizers=None, precision: str = DEFAULT_PRECISION):
    """Tidy DataFrame: one row per (size, optimizer, component) with ``bytes`` and ``GB``.

    Components are params, grads, state, master; their sum per (size, optimizer) is the total.
    ``optimizers`` defaults to every registered entry.
    """
    import pandas as pd

    import optimizers as registry
    names = registry.names() if optimizers is None else list(optimizers)
    rows = []
    for size in sizes:
        for name in names:
            b = breakdown(size, name, precision)
            for component in COMPONENTS:
                rows.append({"size": size, "optimizer": name, "precision": precision,
                             "component": component, "bytes": b[component], "GB": b[component] / GB})
    return pd.DataFrame(rows, columns=["size", "optimizer", "precision", "component", "bytes", "GB"])


SEED_70B = (  # seed 001, section 4.2: (component, dtype, formula, GB)
    ("params", "fp16", "70B x 2", 140.0),
    ("grads", "fp16", "70B x 2", 140.0),
    ("m (exp_avg)", "fp32", "70B x 4", 280.0),
    ("v (exp_avg_sq)", "fp32", "70B x 4", 280.0),
)


def seed_table_70b():
    """Seed 001's four rows next to ``breakdown(70e9, "adam", "mixed")``, with a ``matches`` flag.

    Adam's state is two moments of the parameter's shape, so m and v are half of ``state`` each.
    ``attrs`` holds the totals: the seed's 840 GB, ours in its convention, the master weights it
    omits (``complete`` is False) and the total with them (1120 GB).
    """
    import pandas as pd
    b = breakdown(70e9, "adam", "mixed")
    ours = [b["params"], b["grads"], b["state"] / 2, b["state"] / 2]
    df = pd.DataFrame([{"component": c, "dtype": d, "formula": f, "seed_GB": gb, "computed_GB": x / GB,
                        "matches": x / GB == gb} for (c, d, f, gb), x in zip(SEED_70B, ours)])
    df.attrs.update({
        "seed_total_GB": 840.0,
        "computed_total_GB_seed_convention": b["total_without_master"] / GB,
        "omitted_master_GB": b["master"] / GB,
        "total_with_master_GB": b["total"] / GB,
        "complete": False,
        "omits": ["fp32 master weights", "activations", "temporary buffers", "fragmentation"],
    })
    return df


def parse_count(text: str) -> int:
    """A parameter count, a whole number >= 1: 70e9, 7000000000, 70B, 1.3b, 125M, 350k (decimal
    arithmetic, so 1.1B is 1100000000 exactly); ValueError names the text and what is valid."""
    valid = f"a whole number from 1 to {MAX_PARAMS:.0e}, e.g. 70e9, 70B, 1.3B, 125M"
    scale = {"k": 3, "m": 6, "b": 9, "g": 9, "t": 12}
    t = text.strip().lower().replace("_", "")
    exponent = scale[t[-1]] if t and t[-1] in scale else 0
    try:
        value = decimal.Decimal(t[:-1] if exponent else t).scaleb(exponent)
    except decimal.InvalidOperation:
        raise ValueError(f"{text!r} is not a parameter count; valid: {valid}") from None
    if not value.is_finite() or value != value.to_integral_value():
        raise ValueError(f"{text!r} is not a whole number of parameters; valid: {valid}")
    if not 1 <= value <= MAX_PARAMS:
        raise ValueError(f"{text!r} is out of range; valid: {valid}")
    return int(value)


def format_count(n: float) -> str:
    """125M, 1.3B, 70B."""
    for suffix, scale in (("T", 1e12), ("B", 1e9), ("M", 1e6), ("K", 1e3)):
        if n >= scale:
            return f"{n / scale:.4g}{suffix}"
    return f"{n:.4g}"
