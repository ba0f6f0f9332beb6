"""Freezing and thawing by parameter name, with BatchNorm kept consistent with its parameters."""

from __future__ import annotations

from collections.abc import Iterable

from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm


def set_trainable(module: nn.Module, names: Iterable[str]) -> None:
    """Make exactly ``names`` trainable (``requires_grad``) and freeze every other parameter."""
    wanted = set(names)
    for name, param in module.named_parameters():
        param.requires_grad_(name in wanted)


def frozen_batchnorms(module: nn.Module) -> list[_BatchNorm]:
    """BatchNorm layers whose affine parameters are all frozen (layers without parameters are left alone)."""
    layers = []
    for layer in module.modules():
        if isinstance(layer, _BatchNorm):
            params = list(layer.parameters(recurse=False))
            if params and not any(p.requires_grad for p in params):
                layers.append(layer)
    return layers


def apply_batchnorm_policy(module: nn.Module, track_running_stats: bool) -> None:
    """Put frozen BatchNorm layers in eval mode so their running statistics stay those of pretraining, and thawed
    ones back in the module's mode.

    Lightning restores each submodule's own train/eval flag around validation, so a layer set to eval here stays
    in eval until this function puts it back. ``track_running_stats`` mirrors FTS's
    ``frozen_bn_track_running_stats``; thawed layers always track.
    """
    frozen = set(map(id, frozen_batchnorms(module)))
    for layer in module.modules():
        if isinstance(layer, _BatchNorm) and list(layer.parameters(recurse=False)):
            if id(layer) in frozen:
                layer.eval()
                layer.track_running_stats = track_running_stats
            else:
                layer.train(module.training)
                layer.track_running_stats = True
