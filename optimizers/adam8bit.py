r"""8-bit Adam and AdamW (bitsandbytes.optim.Adam8bit / AdamW8bit): block-wise quantised moments.

The update is Adam's (Kingma & Ba 2015), computed in float32 from dequantised moments:

.. math::
    m_t &= \beta_1 m_{t-1} + (1-\beta_1) g_t, \qquad v_t = \beta_2 v_{t-1} + (1-\beta_2) g_t^2 \\
    \theta_t &= \theta_{t-1}(1 - \eta\lambda)
        - \frac{\eta}{1-\beta_1^t}\,\frac{m_t}{\sqrt{v_t/(1-\beta_2^t)} + \epsilon}

after which :math:`m_t` and :math:`v_t` are stored again as one byte per element: each block of
256 consecutive elements is scaled by its absolute maximum (kept in float32) and rounded to the
nearest of 256 levels of a dynamic (non-uniform, tree) quantisation map -- a signed map for
:math:`m`, an unsigned one for :math:`v`.

Paper: Dettmers, Lewis, Shleifer & Zettlemoyer, "8-bit Optimizers via Block-wise Quantization",
ICLR 2022. Implementation: bitsandbytes.optim.Adam8bit / AdamW8bit. On CPU bitsandbytes 0.50
runs the update in PyTorch (backends/cpu/ops.py): dequantise, float32 Adam, requantise -- the
stored state is exactly the 8-bit one, the arithmetic is the reference one.

What bitsandbytes does that the entry inherits, and that the report should know:

- Parameters with fewer than ``min_8bit_size`` = 4096 elements keep float32 moments (whatever
  the parameter's dtype): quantising biases and norms saves little and costs accuracy.
- ``weight_decay`` is decoupled (:math:`\theta \leftarrow \theta(1-\eta\lambda)`) in *both*
  classes: bitsandbytes' "adam" kernel applies decay that way, so Adam8bit with decay is AdamW;
  the two entries differ only in their default decay (0 and 0.01), as torch's Adam and AdamW do.
- ``step`` is a Python int.

Seed 003 describes 8-bit Adam as "dynamic quantisation in blocks of 32 dimensions, stable
quantisation, block-wise quantisation"; the blocks are 256 elements here (2048 in the
paper), and the "stable embedding" layer of the paper is a model change, not part of the
optimizer. Seed 003's "75% less memory" holds for the moments of large tensors only
(2 bytes per element against 8), not for small ones.

State per parameter of :math:`n` elements: :math:`n < 4096`: ``state1``, ``state2`` in float32,
:math:`8n` bytes. :math:`n \ge 4096`: ``state1``, ``state2`` in uint8 plus ``absmax1``,
``absmax2`` in float32, :math:`2n + 8\lceil n/256 \rceil` bytes -- plus, once per optimizer,
the two 256-entry float32 quantisation maps (2048 bytes) that every 8-bit parameter's state
references (``qmap1``, ``qmap2`` are the same two tensors for all of them). That shared term is
not a per-parameter quantity, so it is declared as the entry's ``shared_state_bytes``, which the
registry's ``model_state_bytes`` adds once per optimizer.
"""
from __future__ import annotations

import math


from optimizers import Moment, numel, register
from optimizers.adam import adam_spec

MIN_8BIT_SIZE = 4096   # bitsandbytes' default min_8bit_size: smaller tensors keep float32 state
BLOCKSIZE = 256        # bitsandbytes' block size for optimizer states (Optimizer2State.init_state)
QMAP_BYTES = 2 * 256 * 4   # the "dynamic" and "udynamic" maps, float32, shared by all 8-bit params


def adam8bit_state_bytes(shape, dtype):
    n = numel(shape)
    if n < MIN_8BIT_SIZE:
        return 2 * n * 4                                    # float32 m and v, any param dtype
    return 2 * n + 2 * math.ceil(n / BLOCKSIZE) * 4          # uint8 m, v + float32 absmax per block


def adam8bit_shared_state_bytes(shapes_and_dtypes) -> int:
    return QMAP_BYTES if any(numel(s) >= MIN_8BIT_SIZE for s, _ in shapes_and_dtypes) else 0


def build_adam8bit(params, **hp):
    import bitsandbytes as bnb  # imported when used: bitsandbytes takes seconds to import
    return bnb.optim.Adam8bit(params, **hp)


def build_adamw8bit(params, **hp):
    import bitsandbytes as bnb
    return bnb.optim.AdamW8bit(params, **hp)


# bitsandbytes' state1 and state2: Adam's m and v, 8-bit (float32 below MIN_8BIT_SIZE)
ADAM8BIT = dict(package="bitsandbytes", state_bytes=adam8bit_state_bytes, shared_state_bytes=adam8bit_shared_state_bytes,
                moments={"m": (Moment("state1", "8bit"),), "v": (Moment("state2", "8bit"),)})

register(adam_spec("adam8bit", "Dettmers et al. 2022", "bitsandbytes.optim.Adam8bit", build_adam8bit, **ADAM8BIT))
register(adam_spec("adamw8bit", "Dettmers et al. 2022; Loshchilov & Hutter 2019", "bitsandbytes.optim.AdamW8bit",
                   build_adamw8bit, decoupled=True, **ADAM8BIT))
