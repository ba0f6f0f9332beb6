"""The in-memory best-state snapshot: exact, never aliased with live training state, honest about its size."""

from __future__ import annotations

import torch

from ftexp.callbacks.best_state import BestStateSnapshot
from tests.tiny_models import mlp


def trained_mlp_and_optimizer() -> tuple[torch.nn.Module, torch.optim.Optimizer]:
    net = mlp()
    for p in net[:6].parameters():
        p.requires_grad_(False)
    optimizer = torch.optim.AdamW([p for p in net.parameters() if p.requires_grad], lr=0.1)
    net(torch.randn(4, 8)).sum().backward()
    optimizer.step()
    return net, optimizer


def test_restoring_does_not_let_training_write_into_the_snapshot():
    net, optimizer = trained_mlp_and_optimizer()
    snapshot = BestStateSnapshot.capture(net, depth=0, optimizer=optimizer, schedulers=[])
    saved = {k: v.clone() for k, v in snapshot.optimizer_state["state"][0].items()}
    snapshot.load_optimizer_state_into(optimizer)
    net(torch.randn(4, 8)).sum().backward()
    optimizer.step()  # updates exp_avg / exp_avg_sq in place
    for key, value in snapshot.optimizer_state["state"][0].items():
        assert torch.equal(value, saved[key]), key


def test_snapshot_keeps_only_trainable_weights_but_counts_optimizer_state_in_its_size():
    net, optimizer = trained_mlp_and_optimizer()
    snapshot = BestStateSnapshot.capture(net, depth=0, optimizer=optimizer, schedulers=[])
    assert sorted(snapshot.tensors) == ["6.bias", "6.weight"]
    head_bytes = sum(p.numel() * 4 for p in net[6].parameters())
    assert snapshot.nbytes > 3 * head_bytes, "weights + AdamW's two moments (+ step counters)"


def test_stash_restores_parameters_thawed_after_the_snapshot():
    net, optimizer = trained_mlp_and_optimizer()
    snapshot = BestStateSnapshot.capture(net, depth=0, optimizer=optimizer, schedulers=[])
    before = net[4].weight.detach().clone()
    params = dict(net.named_parameters())
    snapshot.stash_before_thaw(params, ["4.weight", "4.bias"])
    with torch.no_grad():
        net[4].weight.add_(1.0)  # "trained" after the thaw
    snapshot.load_weights_into(net)
    assert torch.equal(net[4].weight, before)
