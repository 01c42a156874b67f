"""CDSM's optimizer: Adam with one parameter group per tensor (as the original builds it), each
group updated by PyTorch's fused Adam kernel where the device has one, and StepLR.

The original builds ``[{"params": [value]} for every trainable tensor]`` and
``torch.optim.Adam(params, lr=args.lr, weight_decay=args.weight_decay)`` (every group takes that
lr and weight decay). PyTorch's default for that is the for-loop Adam on a CPU and the
multi-tensor (foreach) path on CUDA, which has nothing to batch in a group of one tensor: one small
update after another, 15 % of a smoke run's wall time. ``fused=True`` is the same update (the
same formula, bias corrections and L2 weight decay added to the gradient, tested to 1e-6 over 20
steps against ``foreach=False, fused=False``) computed by one kernel per group. The groups are
kept as the original sets them (one per tensor, the same lr and weight decay), so per-group
settings, schedulers and state dicts stay as they were. Devices without a fused Adam kernel use
the multi-tensor (``foreach``) path.
"""
from __future__ import annotations

import functools

import torch


@functools.cache
def fused_adam_available(device_type: str) -> bool:
    """Whether PyTorch has a fused Adam kernel for float32 parameters on ``device_type``: one step
    of a one-element fused Adam there."""
    try:
        p = torch.zeros(1, device=device_type, requires_grad=True)
        p.grad = torch.ones_like(p)
        torch.optim.Adam([p], lr=1e-3, fused=True).step()
        return True
    except (RuntimeError, NotImplementedError):
        return False


def adam_implementation(device) -> dict:
    """Adam's keyword arguments for parameters on ``device``: fused where available, else foreach."""
    if fused_adam_available(torch.device(device).type):
        return {"fused": True}
    return {"foreach": True}


def parameter_groups(model) -> list[dict]:
    """One group per trainable tensor, as the original (lr and weight decay: Adam's arguments)."""
    return [{"params": [p]} for p in model.parameters() if p.requires_grad]


def build_optimizer(model, lr: float, weight_decay: float, step_size: int, gamma: float = 0.1,
                    implementation: str = "auto"):
    """(Adam, StepLR) for ``model``; implementation "auto" (fused where possible, else foreach),
    "fused", "foreach" or "for-loop" (the original's default path; tests and measurements)."""
    groups = parameter_groups(model)
    if implementation == "auto":
        device = groups[0]["params"][0].device if groups else torch.device("cpu")
        kw = adam_implementation(device)
    else:
        kw = {"fused": {"fused": True}, "foreach": {"foreach": True},
              "for-loop": {"foreach": False, "fused": False}}[implementation]
    optimizer = torch.optim.Adam(groups, lr=lr, weight_decay=weight_decay, **kw)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=step_size, gamma=gamma)
    return optimizer, scheduler


def load_optimizer_state(optimizer: torch.optim.Optimizer, state_dict: dict) -> None:
    """optimizer.load_state_dict, keeping this optimizer's implementation (fused/foreach): a
    checkpoint written by the for-loop Adam (before fused was used) resumes on the fused path, with
    its step counters moved where the kernel wants them (fused: float32 on the parameter's device;
    otherwise on the CPU)."""
    flags = [{k: g.get(k) for k in ("fused", "foreach")} for g in optimizer.param_groups]
    optimizer.load_state_dict(state_dict)
    for group, kept in zip(optimizer.param_groups, flags):
        group.update(kept)
        on_device = bool(group.get("fused") or group.get("capturable"))
        for p in group["params"]:
            state = optimizer.state.get(p)
            if state and torch.is_tensor(state.get("step")):
                state["step"] = state["step"].to(dtype=torch.float32,
                                                 device=p.device if on_device else "cpu")
