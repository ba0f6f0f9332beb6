"""Presets (`ftexp.presets`): Flash's freeze / freeze_unfreeze / unfreeze_milestones and Lightning's backbone
fine-tuning, as schedules. Read as specifications: "from epoch k, exactly these parameters train at these lrs"."""

from __future__ import annotations

import pytest
from pytorch_lightning.callbacks import Callback

from ftexp import FinetuningScheduler, ScheduleError, presets
from ftexp.train import run
from tests.helpers import compose_config
from tests.tiny_models import TinyModule, TinyTransformerClassifier, trainer

HEAD = {"model.classifier.weight", "model.classifier.bias"}
POOLER = {"model.bert.pooler.dense.weight", "model.bert.pooler.dense.bias"}


def names_under(model, *prefixes: str) -> set[str]:
    return {name for name, _ in model.named_parameters() if name.startswith(prefixes)}


class TrainableProbe(Callback):
    """After the scheduler's epoch-start hook: the trainable parameter names and the lr of every optimizer group."""

    def __init__(self) -> None:
        self.epochs: dict[int, tuple[set[str], list[float]]] = {}

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        trainable = {name for name, p in pl_module.named_parameters() if p.requires_grad}
        lrs = [group["lr"] for group in trainer.optimizers[0].param_groups]
        self.epochs[trainer.current_epoch] = (trainable, lrs)


def fit_with(schedule, tmp_path, max_epochs: int, model=None) -> TrainableProbe:
    """Train with ``schedule`` as the presets are meant to run: transitions at their epochs, no restore."""
    model = model if model is not None else TinyTransformerClassifier(lr=1e-3)
    probe = TrainableProbe()
    fts = FinetuningScheduler(schedule.to_dict(), epoch_transitions_only=True, restore_best=False, base_max_lr=None)
    trainer(tmp_path, [fts, probe], max_epochs=max_epochs).fit(model)
    return probe


# ------------------------------------------------------------------ what each preset trains, epoch by epoch
@pytest.mark.filterwarnings("ignore:ftexp. 39 parameters are in no phase:UserWarning")  # what freeze means
def test_freeze_trains_only_the_task_head_in_every_epoch(tmp_path):
    model = TinyTransformerClassifier(lr=1e-3)
    probe = fit_with(presets.freeze(model), tmp_path, max_epochs=3, model=model)

    for epoch in range(3):
        assert probe.epochs[epoch] == (HEAD, [1e-3, 1e-3]), "classifier weight (decay) and bias (no decay) groups"


def test_freeze_unfreeze_thaws_the_whole_backbone_at_the_unfreeze_epoch(tmp_path):
    model = TinyTransformerClassifier(lr=1e-3)
    everything = names_under(model, "")
    probe = fit_with(presets.freeze_unfreeze(model, unfreeze_epoch=2, lr=5e-4), tmp_path, max_epochs=3, model=model)

    assert probe.epochs[0] == probe.epochs[1] == (HEAD, [1e-3, 1e-3])
    assert probe.epochs[2] == (everything, [1e-3, 1e-3, 5e-4, 5e-4])


def test_unfreeze_milestones_thaws_the_last_layer_with_the_pooler_then_everything(tmp_path):
    model = TinyTransformerClassifier(lr=1e-3)
    layer1 = names_under(model, "model.bert.encoder.layer.1.")
    schedule = presets.unfreeze_milestones(model, milestones=(1, 2), num_layers=1, lr=2e-4)
    probe = fit_with(schedule, tmp_path, max_epochs=3, model=model)

    assert probe.epochs[0] == (HEAD, [1e-3, 1e-3])
    assert probe.epochs[1] == (HEAD | POOLER | layer1, [1e-3, 1e-3, 2e-4, 2e-4])
    assert probe.epochs[2] == (names_under(model, ""), [1e-3, 1e-3, 2e-4, 2e-4, 2e-4, 2e-4])


def test_backbone_thaws_the_backbone_at_a_fraction_of_the_head_lr(tmp_path):
    model = TinyTransformerClassifier(lr=1e-3)
    schedule = presets.backbone(model, unfreeze_epoch=1, head_lr=1e-3, lr_fraction=0.1)
    probe = fit_with(schedule, tmp_path, max_epochs=2, model=model)

    assert probe.epochs[0] == (HEAD, [1e-3, 1e-3])
    trainable, lrs = probe.epochs[1]
    assert trainable == names_under(model, "")
    assert lrs == pytest.approx([1e-3, 1e-3, 1e-4, 1e-4])


def test_on_an_mlp_the_last_linear_is_the_head_and_each_linear_a_layer(tmp_path):
    model = TinyModule(lr=1e-2)
    schedule = presets.unfreeze_milestones(model, milestones=(1, 2), num_layers=2)
    probe = fit_with(schedule, tmp_path, max_epochs=3, model=model)

    assert probe.epochs[0][0] == {"net.6.weight", "net.6.bias"}
    assert probe.epochs[1][0] == {f"net.{i}.{p}" for i in (2, 4, 6) for p in ("weight", "bias")}
    assert probe.epochs[2][0] == names_under(model, "")
    assert probe.epochs[2][1] == [1e-2] * 3, "one group per phase (no no_decay split); base_max_lr=None: 1e-2"


def test_schedule_freeze_unfreeze_thaws_the_backbone_at_its_epoch_in_a_hydra_run(tmp_path):
    overrides = [
        "schedule=freeze_unfreeze",
        "schedule.callbacks.fts.ft_schedule.unfreeze_epoch=1",
        "debug=limit",
        "trainer.max_epochs=2",
        "trainer.limit_train_batches=2",
        "test=false",
        "data.synthetic.n_train=64",
    ]
    result = run(compose_config(tmp_path, *overrides))

    assert [(phase["depth"], phase["start_epoch"]) for phase in result["phases_run"]] == [(0, 0), (1, 1)]
    per_phase = result["trainable_params_per_phase"]
    assert per_phase["1"] == result["total_params"] > per_phase["0"]
    assert result["transitions"][0]["lrs"] == pytest.approx([1e-3 * 0.9] * 2 + [1e-3] * 2), (
        "the head's groups decayed one StepLR step; the backbone's start at the optimizer's initial lr"
    )


# ------------------------------------------------------------------ schedules from names alone
def test_presets_work_on_parameter_names_with_an_explicit_head():
    names = ["emb.weight", "block.0.w", "block.1.w", "head.w", "head.b"]

    assert presets.freeze(names, head=["head.*"]).phases[0].params == ("head.w", "head.b")
    two = presets.freeze_unfreeze(names, head=["head.*"], unfreeze_epoch=3)
    assert [(p.params, p.max_transition_epoch) for p in two.phases] == [
        (("head.w", "head.b"), 3),
        (("emb.weight", "block.0.w", "block.1.w"), -1),
    ]
    units = [["block.1.w"], ["block.0.w"]]
    three = presets.unfreeze_milestones(names, head=["head.*"], units=units, milestones=[2, 4], num_layers=1)
    assert [p.params for p in three.phases] == [("head.w", "head.b"), ("block.1.w",), ("emb.weight", "block.0.w")]
    assert [p.max_transition_epoch for p in three.phases] == [2, 4, -1]


def test_layer_units_group_the_pooler_with_the_top_layer_and_the_embeddings_with_the_bottom_one():
    model = TinyTransformerClassifier()
    units = presets.layer_units(model)

    assert [set(unit) for unit in units] == [
        POOLER | names_under(model, "model.bert.encoder.layer.1."),
        names_under(model, "model.bert.encoder.layer.0.", "model.bert.embeddings."),
    ]


def test_a_custom_head_moves_its_parameters_out_of_the_backbone():
    model = TinyTransformerClassifier()
    schedule = presets.freeze_unfreeze(model, head=["model.classifier.*", "model.bert.pooler.*"], unfreeze_epoch=1)

    assert set(schedule[0].params) == HEAD | POOLER
    assert not set(schedule[1].params) & (HEAD | POOLER)


# ------------------------------------------------------------------ bad arguments fail with the key named
@pytest.mark.parametrize(
    ("call", "key", "message"),
    [
        (lambda m: presets.freeze(m, head=["model.nothing.*"]), "head", "matches no parameter"),
        (lambda m: presets.freeze(m, head=[".*"]), "head", "covers every parameter"),
        (lambda m: presets.freeze_unfreeze(m, unfreeze_epoch=0), "unfreeze_epoch", "integer >= 1"),
        (lambda m: presets.unfreeze_milestones(m, milestones=(4, 2)), "milestones", "two increasing epochs"),
        (lambda m: presets.unfreeze_milestones(m, num_layers=2), "num_layers", "has 2 layers below the head"),
        (lambda m: presets.backbone(m), "head_lr", "give head_lr"),
        (lambda m: presets.backbone(m, head_lr=1e-3, lr_fraction=-1), "lr_fraction", "positive number"),
    ],
)
def test_bad_preset_arguments_raise_a_schedule_error_naming_the_key(call, key, message):
    with pytest.raises(ScheduleError, match=message) as raised:
        call(TinyTransformerClassifier())
    assert raised.value.key == key
    assert raised.value.source.startswith("<preset:")
