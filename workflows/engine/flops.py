"""FLOPs and bytes of one training step (forward + backward) of a task, counted on its model.

FLOPs come from torch.utils.flop_counter.FlopCounterMode over one forward and backward of the
task's batch 0: it counts the matrix products (mm, bmm, addmm, convolutions, scaled dot-product
attention) at 2 FLOPs a multiply-add, and nothing else (elementwise work, norms, softmax and the
optimizer's step are memory-bound, and counted in bytes instead). For a transformer that is the
usual 6·N·tokens (2 forward, 4 backward per weight per token, N the weights of the matrix products)
plus attention, 14·layers·seq²·dim per sequence: QKᵀ and AV, 2·seq²·dim each forward, and in
backward the five products flash attention runs (the scores recomputed, then dP, dV, dQ, dK), as
torch's own sdpa formulas count them; causal masking does not halve what SDPA computes. The CPU's
SDPA kernel is missing from torch's table, so it is added here with the same formulas.

Bytes are a floor of the memory traffic: the weights are read in forward and in backward, the
gradients written, and the optimizer reads weights and gradients and writes the weights (5 passes
over the parameters' bytes), and every activation autograd saves is written in forward and read in
backward (2 passes over `saved_activation_bytes`).
"""
from __future__ import annotations

import torch
from torch.utils import flop_counter
from torch.utils.flop_counter import FlopCounterMode

import tasks
from workflows.engine.harness import split_batch

PARAMETER_PASSES = 5
ACTIVATION_PASSES = 2
OPTIMIZER_PASSES = 3   # of PARAMETER_PASSES, the optimizer's: weights and gradients read, weights written


def saved_activation_bytes(problem, model, accumulate: int = 1) -> int:
    """Bytes of the tensors autograd keeps from one forward for the backward (each storage once).
    Device-independent, and exact where peak memory on CPU is not measurable. Under activation
    checkpointing it counts what is kept outside the checkpointed blocks; their inputs, and the one
    block recomputed at a time during backward, come on top (on CUDA the peak memory says all)."""
    seen = {}

    def pack(t):
        storage = t.untyped_storage()
        seen[(storage.data_ptr(), t.device)] = storage.nbytes()
        return t

    batch = split_batch(problem.batch(0), accumulate)[0]   # one micro-batch is alive at a time
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        loss = problem.loss(model, batch)
    loss.backward()
    model.zero_grad(set_to_none=True)
    return sum(seen.values())


def _sdpa_cpu(query_shape, key_shape, value_shape, *args, out_shape=None, **kwargs) -> int:
    return flop_counter.sdpa_flop_count(query_shape, key_shape, value_shape)


def _sdpa_cpu_backward(grad_out_shape, query_shape, key_shape, value_shape, *args, out_shape=None, **kwargs) -> int:
    return flop_counter.sdpa_backward_flop_count(grad_out_shape, query_shape, key_shape, value_shape)


CPU_SDPA = {torch.ops.aten._scaled_dot_product_flash_attention_for_cpu: _sdpa_cpu,   # FlopCounterMode
            torch.ops.aten._scaled_dot_product_flash_attention_for_cpu_backward: _sdpa_cpu_backward}  # passes shapes


def step_flops(problem, model) -> int:
    """FLOPs of one forward and backward of `problem`'s batch 0 through `model` (gradients are
    left in place: call on a throwaway model)."""
    batch = problem.batch(0)
    counter = FlopCounterMode(display=False, custom_mapping=CPU_SDPA)
    with counter:
        problem.loss(model, batch).backward()
    return int(counter.get_total_flops())


def step_cost(task: str, size: str, device: str = "cpu") -> dict:
    """{"params", "flops_per_step", "bytes_per_step"} of one training step of `task` at `size` (the
    counts do not depend on the device; a GPU counts a gpu size in a moment)."""
    problem = tasks.get(task).make(size, seed=0, device=torch.device(device))
    model = problem.model.to(device)
    model.train()
    params = list(model.parameters())
    param_bytes = sum(p.numel() * p.element_size() for p in params)
    activation_bytes = saved_activation_bytes(problem, model)   # leaves no gradients behind
    flops = step_flops(problem, model)
    model.zero_grad(set_to_none=True)
    return {"params": sum(p.numel() for p in params), "flops_per_step": flops,
            "bytes_per_step": PARAMETER_PASSES * param_bytes + ACTIVATION_PASSES * activation_bytes,
            "parameters": named_shapes(model)}


def named_shapes(model) -> list[tuple[str, tuple, torch.dtype]]:
    """(name, shape, dtype) of each trained parameter: what an optimizer's step cost depends on."""
    return [(n, tuple(p.shape), p.dtype) for n, p in model.named_parameters() if p.requires_grad]


def lm_step_flops(size: dict, vocab: int) -> int:
    """The LM's step FLOPs from its size alone, the count `step_flops` makes (the test checks them
    equal): 6·N·tokens over the weights of the matrix products (attention, MLP, lm_head; the
    embedding is a lookup) plus attention's 14·layers·seq²·dim per sequence (the module docstring).
    For sizes whose counted step would take minutes on a CPU (the gpu sizes)."""
    d, f, layers, seq, batch = size["dim"], size["ffn"], size["layers"], size["seq"], size["batch"]
    n = layers * (4 * d * d + 3 * d * f) + vocab * d
    return 6 * n * seq * batch + 14 * layers * seq * seq * d * batch


def estimated_step_cost(task: str, size: str, device: str = "cpu") -> dict:
    """`step_cost`, with an LM's FLOPs from `lm_step_flops` and its bytes from the parameters alone
    (activations left out: a floor) when the size is not smoke: no model step is run for them."""
    spec = tasks.get(task)
    if spec.family != "lm" or size == "smoke":
        return step_cost(task, size, device)
    from tasks.lm import VOCAB, build_model, count_parameters
    kw = spec.size(size)
    params = count_parameters(kw)
    with torch.device("meta"):   # the shapes, no weights
        shapes = named_shapes(build_model(kw, seed=0))
    return {"params": params, "flops_per_step": lm_step_flops(kw, VOCAB),
            "bytes_per_step": PARAMETER_PASSES * 4 * params, "parameters": shapes}


def optimizer_step_cost(task: str, optimizer: str, parameters) -> dict:
    """{"bytes", and FLOPs by kind (optimizers.STEP_FLOP_KINDS)} of one step of registry entry
    `optimizer` on the task's `parameters` (named_shapes), its fallback's share included, at the
    entry's defaults and the task's (workflows.engine.harness.task_defaults: the preconditioning
    interval of the run). Bytes: an elementwise step reads the weights, the gradients and the state
    and writes the weights and the state (3 passes over the weights, 2 over `state_bytes`); the
    matrix work is the entry's `step_flops`. Scratch tensors and bitsandbytes' shared maps are left
    out: a floor."""
    import optimizers
    from optimizers.routing import split_parameters
    from workflows.engine.harness import task_defaults
    spec = optimizers.get(optimizer)
    named = [(n, torch.empty(shape, dtype=dtype, device="meta", requires_grad=True)) for n, shape, dtype in parameters]
    taken, rest = split_parameters(spec, named)
    total = {"bytes": 0.0}
    for entry, params in ((spec, taken), (optimizers.get(spec.fallback) if rest else None, rest)):
        if not params:
            continue
        hp = entry.hparams(task_defaults(tasks.get(task), entry))
        for _, p in params:
            shape = tuple(p.shape)
            total["bytes"] += (OPTIMIZER_PASSES * p.numel() * p.element_size()
                               + 2 * entry.state_bytes(shape, p.dtype))
            for kind, n in (entry.step_flops(shape, hp) if entry.step_flops else {}).items():
                total[kind] = total.get(kind, 0.0) + n
    return total
