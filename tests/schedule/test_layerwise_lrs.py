"""Specifications of per-group lrs inside a phase (``lr_decay``), without a Trainer: which groups a decayed phase
has, at which lrs, how many optimizer groups they count for, what is refused, and what a saved schedule reads back
as. The tiny model is a 2-layer BERT classifier whose blocks (the ``blocks`` generator's) are: the classifier, the
pooler, layer 1, layer 0, the embeddings."""

from __future__ import annotations

import pytest

from ftexp import ScheduleError, presets
from ftexp.schedule import (
    Phase,
    Schedule,
    check_phase_directives,
    dump_schedule_yaml,
    group_counts,
    load_schedule,
    resolve_layerwise,
    resolve_schedule,
    with_group_lrs,
)
from tests.tiny_models import TinyTransformerClassifier

HEAD = "model.classifier"
POOLER = "model.bert.pooler"
LAYER1 = "model.bert.encoder.layer.1"
LAYER0 = "model.bert.encoder.layer.0"
EMBEDDINGS = "model.bert.embeddings"
STEP_LR = {"lr_scheduler_init": {"class_path": "torch.optim.lr_scheduler.StepLR", "init_args": {"step_size": 1}}}


@pytest.fixture(scope="module")
def model() -> TinyTransformerClassifier:
    return TinyTransformerClassifier(lr=1e-3)


def resolved(raw, model) -> Schedule:
    names = [name for name, _ in model.named_parameters()]
    schedule, _ = resolve_schedule(load_schedule(raw), names)
    return resolve_layerwise(schedule, model)


def under(model, prefix: str) -> tuple[str, ...]:
    return tuple(name for name, _ in model.named_parameters() if name.startswith(prefix + "."))


def head_then_backbone(**phase1) -> dict:
    """The classifier in phase 0; everything else in phase 1, with the given extra keys."""
    return {0: {"params": [f"{HEAD}.*"]}, 1: {"params": ["model.bert.*"], **phase1}}


# ------------------------------------------------------------------ the groups of a decayed phase
def test_a_decayed_phase_has_one_group_per_block_from_the_output_side_down_at_lr_times_decay_to_the_k(model):
    phase = resolved(head_then_backbone(lr=1e-3, lr_decay=0.5), model)[1]

    assert [group.name for group in phase.groups] == [POOLER, LAYER1, LAYER0, EMBEDDINGS]
    assert [group.params for group in phase.groups] == [under(model, p) for p in (POOLER, LAYER1, LAYER0, EMBEDDINGS)]
    assert [group.lr_for(1e-3) for group in phase.groups] == [1e-3, 5e-4, 2.5e-4, 1.25e-4]


def test_k_counts_only_the_blocks_the_phase_holds(model):
    schedule = {
        0: {"params": [f"{HEAD}.*", f"{POOLER}.*", f"{LAYER1}.*"]},
        1: {"params": [f"{LAYER0}.*", f"{EMBEDDINGS}.*"], "lr_decay": 0.5},
    }
    phase = resolved(schedule, model)[1]
    assert [(group.name, group.lr_for(2e-3)) for group in phase.groups] == [(LAYER0, 2e-3), (EMBEDDINGS, 1e-3)]


def test_a_phase_holding_part_of_a_block_names_the_modules_it_holds(model):
    schedule = {0: {"params": [f"{HEAD}.*"]}, 1: {"params": [f"{LAYER1}.output.*", f"{LAYER0}.*"], "lr_decay": 0.5}}
    phase = resolved(schedule, model)[1]
    assert [group.name for group in phase.groups] == [f"{LAYER1}.output", LAYER0]


def test_an_lr_decay_of_one_gives_every_block_the_phase_lr_in_its_own_group(model):
    phase = resolved(head_then_backbone(lr=1e-3, lr_decay=1), model)[1]
    assert [group.lr_for(1e-3) for group in phase.groups] == [1e-3] * 4


def test_an_fts_schedule_comes_back_unchanged(model):
    names = [name for name, _ in model.named_parameters()]
    schedule, _ = resolve_schedule(load_schedule(head_then_backbone(lr=1e-3)), names)
    assert resolve_layerwise(schedule, model) is schedule
    assert all(phase.groups == () and phase.block_params == (phase.params,) for phase in schedule.phases)


# ------------------------------------------------------------------ optimizer groups and init_pg_lrs
def test_a_decayed_phase_adds_one_group_per_block_or_two_with_a_no_decay_split(model):
    schedule = resolved(head_then_backbone(lr_decay=0.5), model)
    assert group_counts(schedule, 1, None) == [1, 1 + 4]
    assert group_counts(schedule, 2, ["bias", "LayerNorm.weight"]) == [2, 2 + 8]


def test_init_pg_lrs_is_checked_against_the_per_block_group_count(model):
    no_decay = ["bias", "LayerNorm.weight"]
    right = {**STEP_LR, "init_pg_lrs": [1e-4] * 10}  # every group in phase 1: 2 of phase 0, 2 per block x 4
    earlier = {**STEP_LR, "init_pg_lrs": [1e-4] * 2}  # FTS's form: the groups of earlier phases
    for spec in (right, earlier):
        check_phase_directives(resolved(head_then_backbone(lr_decay=0.5, new_lr_scheduler=spec), model), 2, no_decay)

    wrong = {**STEP_LR, "init_pg_lrs": [1e-4] * 4}  # one per group as if the phase were not split by block
    with pytest.raises(ScheduleError, match=r"phase 1, key 'new_lr_scheduler.init_pg_lrs'\] has 4 .* 2 .* or 10 "):
        check_phase_directives(resolved(head_then_backbone(lr_decay=0.5, new_lr_scheduler=wrong), model), 2, no_decay)


# ------------------------------------------------------------------ refused before training
@pytest.mark.parametrize("bad", ["0", "-0.5", "1.5", "fast", "true", ".nan", "[0.9]"])
def test_an_lr_decay_outside_zero_to_one_is_refused_naming_the_file_phase_and_key(tmp_path, bad):
    path = tmp_path / "schedule.yaml"
    path.write_text(f"0:\n  params: [{HEAD}.*]\n1:\n  params: [model.bert.*]\n  lr_decay: {bad}\n")
    with pytest.raises(ScheduleError, match=rf"^\[{path}, phase 1, key 'lr_decay'\] must be a number in \(0, 1\]"):
        load_schedule(path)


def test_lr_decay_on_a_phase_without_parameters_is_refused(model):
    names = [name for name, _ in model.named_parameters()]
    schedule = Schedule((Phase(0, under(model, HEAD)), Phase(1, (), lr_decay=0.5)), source="<test>")
    with pytest.raises(ScheduleError, match=r"\[<test>, phase 1, key 'lr_decay'\] .* this phase has none"):
        resolve_layerwise(resolve_schedule(schedule, names)[0], model)


def test_saved_groups_must_hold_exactly_the_phase_s_parameters(model):
    groups = [{"name": POOLER, "lr": 1e-3, "params": list(under(model, POOLER))}]  # the layers are in no group
    with pytest.raises(ScheduleError, match=r"phase 1, key 'groups'\] must hold exactly the phase's parameters"):
        resolved(head_then_backbone(lr=1e-3, groups=groups), model)


def test_a_saved_group_without_an_lr_is_refused():
    with pytest.raises(ScheduleError, match=r"phase 1, key 'groups\[0\].lr'\] missing required key"):
        load_schedule(head_then_backbone(groups=[{"params": ["model.bert.pooler.dense.bias"]}]))


# ------------------------------------------------------------------ the saved schedule
def test_a_saved_schedule_shows_every_group_s_lr_and_reads_back_as_the_same_groups(tmp_path, model):
    schedule = resolved(head_then_backbone(lr_decay=0.5), model)  # phase 1 without lr: known at fit start
    saved = with_group_lrs(schedule, {1: 4e-3})
    path = dump_schedule_yaml(saved.to_dict(), tmp_path / "saved.yaml")

    text = path.read_text()
    assert "lr_decay: 0.5" in text
    assert [f"lr: {lr}" in text for lr in ("0.004", "0.002", "0.001", "0.0005")] == [True] * 4
    again = resolved(path, model)
    trained = [[(g.name, g.params, g.lr_for(1.0)) for g in schedule[1].groups] for schedule in (again, saved)]
    assert trained[0] == trained[1]
    assert [group.lr for group in again[1].groups] == [4e-3, 2e-3, 1e-3, 5e-4]


def test_saved_groups_are_trained_as_written_even_when_lr_decay_would_give_others(tmp_path, model):
    saved = with_group_lrs(resolved(head_then_backbone(lr_decay=0.5), model), {1: 4e-3}).to_dict()
    saved[1]["lr_decay"] = 0.9  # edited after the run: the groups written beside it still say what ran
    again = resolved(saved, model)
    assert [group.lr for group in again[1].groups] == [4e-3, 2e-3, 1e-3, 5e-4]


# ------------------------------------------------------------------ the llrd preset
def test_llrd_is_one_phase_holding_every_parameter_with_the_head_at_lr_and_each_block_below_decayed(model):
    schedule = presets.llrd(model, lr=2e-3, decay=0.5)

    assert len(schedule) == 1
    assert schedule[0].params == tuple(name for name, _ in model.named_parameters())
    assert (schedule[0].lr, schedule[0].lr_decay) == (2e-3, 0.5)
    groups = resolved(schedule, model)[0].groups
    assert [(g.name, g.lr_for(2e-3)) for g in groups] == [
        (HEAD, 2e-3),
        (POOLER, 1e-3),
        (LAYER1, 5e-4),
        (LAYER0, 2.5e-4),
        (EMBEDDINGS, 1.25e-4),
    ]


def test_llrd_defaults_to_a_decay_of_0_9_and_the_optimizer_s_lr(model):
    schedule = presets.llrd(model)
    assert (schedule[0].lr, schedule[0].lr_decay) == (None, 0.9)
    lrs = [group.lr_for(1e-3) for group in resolved(schedule, model)[0].groups]
    assert lrs == [1e-3 * 0.9**k for k in range(5)]


@pytest.mark.parametrize(("kwargs", "key"), [({"decay": 0}, "decay"), ({"decay": 1.1}, "decay"), ({"lr": -1}, "lr")])
def test_llrd_refuses_bad_arguments_naming_them(model, kwargs, key):
    with pytest.raises(ScheduleError, match=rf"\[<preset:llrd>, key '{key}'\]"):
        presets.llrd(model, **kwargs)


def test_llrd_needs_the_module_not_just_names(model):
    with pytest.raises(ScheduleError, match="needs the model"):
        presets.llrd([name for name, _ in model.named_parameters()])
