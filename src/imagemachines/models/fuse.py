"""Fold eval-mode BatchNorm into the convolution before it: the same function, fewer operations per step.

A frozen network in eval mode computes ``bn(conv(x))`` as an affine map of ``conv(x)``; folding it into the
convolution's weights removes the BatchNorm from every forward *and* backward pass of a render. Module names
stay as they were (each folded BatchNorm becomes an ``Identity``), so layer taps keep working; only the output
of a folded convolution itself changes meaning, so taps that target one use the original network. The folded
copy is checked against the original on a random batch and discarded if they disagree.
"""

from __future__ import annotations

import copy

import torch
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval


def fold_batchnorm(model: nn.Module, input_size: int) -> tuple[nn.Module, set[str]]:
    """A copy of *model* with every (Conv2d, BatchNorm2d) pair that runs back to back folded.

    Returns the copy and the names of the convolutions that were folded (their outputs now include the
    BatchNorm). Returns ``(model, set())`` when nothing could be folded or the check fails.
    """
    folded_model = copy.deepcopy(model)
    folded: set[str] = set()
    for parent_name, parent in folded_model.named_modules():
        children = list(parent.named_children())
        for (conv_name, conv), (bn_name, bn) in zip(children, children[1:], strict=False):
            if (isinstance(conv, nn.Conv2d) and isinstance(bn, nn.BatchNorm2d) and bn.track_running_stats
                    and conv.out_channels == bn.num_features):
                setattr(parent, conv_name, fuse_conv_bn_eval(conv, bn))
                setattr(parent, bn_name, nn.Identity())
                folded.add(f"{parent_name}.{conv_name}" if parent_name else conv_name)
    if not folded:
        return model, set()
    folded_model.eval().requires_grad_(False)
    device = next(model.parameters()).device
    # a private generator: checking must not move anyone's global random stream
    x = torch.rand(2, 3, input_size, input_size, generator=torch.Generator().manual_seed(0)).to(device)
    with torch.no_grad():
        same = torch.allclose(model(x), folded_model(x), rtol=1e-3, atol=1e-3)
    return (folded_model, folded) if same else (model, set())
