"""Batch normalisation synchronised over ``torch.distributed`` ranks on any backend (CPU/gloo included).

``torch.nn.SyncBatchNorm`` (Ioffe & Szegedy, ICML 2015 batch statistics, computed over the global
batch) runs on CUDA tensors only. :class:`DistBatchNorm2d` does the same with plain tensor ops:
in training mode under an initialised process group with more than one rank it all-reduces the
per-channel ``[sum, sum of squares, count]`` of the local batch with a *differentiable*
all-reduce (as ``torch.distributed.nn.functional.all_reduce``; its backward sums the gradients
over the ranks), so forward statistics and their gradients are
those of the global batch. Running mean / unbiased running variance are updated from the
global statistics, hence identically on every rank. Without a process group (or with one rank),
and always in eval mode, it is exactly ``nn.BatchNorm2d``.

Parameter and buffer names are those of ``nn.BatchNorm2d``, so state dicts (checkpoints) move
freely between the two. :func:`convert_dist_batchnorm` swaps the BatchNorm layers of a model for
this class in place (the layers keep their parameter and buffer tensors).
"""

from __future__ import annotations

import torch
import torch.distributed as dist
from torch import nn


def _world() -> int:
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


class _AllReduceSum(torch.autograd.Function):
    """Differentiable all-reduce (sum): forward sums over ranks, backward sums the gradients over ranks."""

    @staticmethod
    def forward(ctx, tensor: torch.Tensor) -> torch.Tensor:  # noqa: D102
        out = tensor.clone(memory_format=torch.contiguous_format)
        dist.all_reduce(out, op=dist.ReduceOp.SUM)
        return out

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:  # noqa: D102
        return _AllReduceSum.apply(grad)


class DistBatchNorm2d(nn.BatchNorm2d):
    """``nn.BatchNorm2d`` whose training statistics cover the batches of all ranks: ``(B, C, H, W) -> same``.

    Statistics are accumulated in float64 (sum and sum of squares of every rank), so the
    normalisation of N ranks with batch B/N each equals one process with batch B up to float
    rounding. Every rank must call ``forward`` the same number of times in training mode (as
    under ``DistributedDataParallel``), since each call is a collective.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or _world() <= 1:
            return super().forward(x)
        if x.ndim != 4:
            raise ValueError(f"DistBatchNorm2d expects (B, C, H, W) input, got shape {tuple(x.shape)}")
        x64 = x.double()
        n_local = torch.full((1,), float(x.shape[0] * x.shape[2] * x.shape[3]), dtype=torch.float64, device=x.device)
        packed = torch.cat([x64.sum(dim=(0, 2, 3)), (x64 * x64).sum(dim=(0, 2, 3)), n_local])
        packed = _AllReduceSum.apply(packed)
        c = x.shape[1]
        total, n = packed[:c], packed[2 * c].detach()
        if float(n) < 2:
            raise ValueError(f"DistBatchNorm2d: expected more than 1 value per channel over all ranks, got {int(n)}")
        mean = total / n
        var = (packed[c:2 * c] / n - mean * mean).clamp_min(0.0)  # biased variance, as BatchNorm normalises
        if (self.track_running_stats and self.running_mean is not None and self.running_var is not None
                and self.num_batches_tracked is not None):
            with torch.no_grad():
                self.num_batches_tracked.add_(1)
                factor = (1.0 / float(self.num_batches_tracked)) if self.momentum is None else self.momentum
                self.running_mean.mul_(1 - factor).add_(factor * mean.to(self.running_mean.dtype))
                unbiased = var * (n / (n - 1))
                self.running_var.mul_(1 - factor).add_(factor * unbiased.to(self.running_var.dtype))
        inv = torch.rsqrt(var + self.eps)
        y = (x64 - mean[None, :, None, None]) * inv[None, :, None, None]
        y = y.to(x.dtype)
        if self.affine:
            y = y * self.weight[None, :, None, None] + self.bias[None, :, None, None]
        return y


def convert_dist_batchnorm(model: nn.Module) -> nn.Module:
    """Replace every ``nn.BatchNorm2d`` of ``model`` by :class:`DistBatchNorm2d` (in place); returns the model.

    The new layers share the old layers' parameters and buffers (no copy), so the optimiser and
    checkpoints see the same tensors under the same names. A model that is itself a BatchNorm
    layer is returned converted.
    """
    if type(model) is nn.BatchNorm2d:
        new = DistBatchNorm2d(model.num_features, eps=model.eps, momentum=model.momentum, affine=model.affine,
                              track_running_stats=model.track_running_stats)
        if model.affine:
            new.weight, new.bias = model.weight, model.bias
        new.running_mean, new.running_var = model.running_mean, model.running_var
        new.num_batches_tracked = model.num_batches_tracked
        new.train(model.training)
        return new
    for name, child in model.named_children():
        converted = convert_dist_batchnorm(child)
        if converted is not child:
            model.add_module(name, converted)
    return model
