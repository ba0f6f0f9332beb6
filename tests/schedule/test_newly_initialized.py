"""Specifications of implicit schedules that know what is pretrained: the parameters ``from_pretrained`` initializes
at random because the checkpoint lacks them (the classifier, a pooler a base-model checkpoint does not hold) train
from phase 0 with the head, wherever they sit in the module; the dry run names them. A model built from a config
(nothing pretrained) keeps the schedule of its structure, and explicit schedules are followed as written.

The checkpoints are written here, without network: a tiny backbone saved without its pooler and classifier, as a
bare base model (its tensor names lack the ``bert.`` prefix) or as a classifier whose pooler and head tensors were
deleted before saving; a bare DeBERTa-v2 backbone, the layout of microsoft/deberta-v3-base (no ContextPooler).
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from omegaconf import DictConfig
from safetensors.torch import load_file
from torch import nn
from transformers import AutoConfig, AutoModel, AutoModelForSequenceClassification

from ftexp.config import instantiate
from ftexp.data import build_tokenizer
from ftexp.dry_run import build_skeleton, expected_newly_initialized, plan_phases
from ftexp.models import SequenceClassifier
from ftexp.models.seq_classifier import newly_initialized_parameters
from ftexp.run_schedule import resolve_run_schedule
from ftexp.schedule import Schedule, ScheduleError, generate_schedule, presets
from ftexp.train import build, run
from tests.models.local_copies import MINILM, SMALL_SYNTHETIC, STAND_INS, TINY, compose_config, needs_minilm

BERT = {"model_type": "bert", **TINY}
DEBERTA = STAND_INS["microsoft/deberta-v3-base"]
BERT_POOLER = ("model.bert.pooler.dense.weight", "model.bert.pooler.dense.bias")
DEBERTA_POOLER = ("model.pooler.dense.weight", "model.pooler.dense.bias")
CLASSIFIER = ("model.classifier.weight", "model.classifier.bias")


def write_checkpoint(directory: Path, architecture: dict, layout: str) -> str:
    """A checkpoint of ``architecture`` without pooler and classifier tensors, with the synthetic task's tokenizer.

    ``bare``: the base model's own ``save_pretrained`` (names without the base-model prefix; a BERT base built
    without its pooler). ``deleted``: a sequence classifier saved with its pooler and head tensors removed.
    ``bare-bin``: ``bare`` as a torch ``pytorch_model.bin`` instead of safetensors (older checkpoints).
    """
    tokenizer = build_tokenizer(max_length=128)
    arguments = {key: value for key, value in architecture.items() if key != "model_type"}
    config = AutoConfig.for_model(
        architecture["model_type"], vocab_size=len(tokenizer), pad_token_id=0, max_position_embeddings=160, **arguments
    )
    torch.manual_seed(0)
    if layout.startswith("bare"):
        extra = {"add_pooling_layer": False} if architecture["model_type"] == "bert" else {}
        AutoModel.from_config(config, **extra).save_pretrained(directory)
        if layout == "bare-bin":
            weights = directory / "model.safetensors"
            torch.save(load_file(weights), directory / "pytorch_model.bin")
            weights.unlink()
    else:
        model = AutoModelForSequenceClassification.from_config(config)
        kept = {k: v for k, v in model.state_dict().items() if ".pooler." not in k and not k.startswith("classifier.")}
        model.save_pretrained(directory, state_dict=kept)
    tokenizer.save_pretrained(directory)
    return str(directory)


@pytest.fixture(scope="module")
def bare_bert(tmp_path_factory) -> str:
    return write_checkpoint(tmp_path_factory.mktemp("bare_bert"), BERT, "bare")


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory, bare_bert) -> dict[str, str]:
    return {
        "bert-bare": bare_bert,
        "bert-deleted": write_checkpoint(tmp_path_factory.mktemp("bert_deleted"), BERT, "deleted"),
        "bert-bare-bin": write_checkpoint(tmp_path_factory.mktemp("bert_bare_bin"), BERT, "bare-bin"),
        "deberta-bare": write_checkpoint(tmp_path_factory.mktemp("deberta_bare"), DEBERTA, "bare"),
    }


NEW_PARAMETERS = {
    "bert-bare": BERT_POOLER + CLASSIFIER,
    "bert-deleted": BERT_POOLER + CLASSIFIER,
    "bert-bare-bin": BERT_POOLER + CLASSIFIER,
    "deberta-bare": DEBERTA_POOLER + CLASSIFIER,
}


def pretrained(directory: str) -> SequenceClassifier:
    return SequenceClassifier(pretrained=directory, num_labels=2)


def phases(schedule: Schedule) -> list[list[str]]:
    return [list(phase.params) for phase in schedule.phases]


def without(names: tuple[str, ...], groups: list[list[str]]) -> list[list[str]]:
    """``groups`` with ``names`` taken out and the groups this empties dropped."""
    kept = [[name for name in group if name not in names] for group in groups]
    return [group for group in kept if group]


# ------------------------------------------------------------------------------- what from_pretrained reports
@pytest.mark.parametrize("checkpoint", list(NEW_PARAMETERS))
def test_the_module_records_exactly_the_parameters_the_checkpoint_lacked(checkpoints, checkpoint):
    model = pretrained(checkpoints[checkpoint])
    assert model.newly_initialized == NEW_PARAMETERS[checkpoint]
    names = {name for name, _ in model.named_parameters()}
    assert set(model.newly_initialized) <= names, "named as the LightningModule's named_parameters() names them"


def test_a_model_built_from_a_config_records_none():
    assert SequenceClassifier(backbone=BERT, vocab_size=100).newly_initialized == ()


@needs_minilm
def test_minilm_s_checkpoint_holds_its_pooler_so_only_the_classifier_is_new():
    assert pretrained(MINILM).newly_initialized == CLASSIFIER


class WithBackbone(nn.Module):
    """A head around a base model under ``backbone`` (its ``base_model_prefix``) that holds BatchNorm buffers."""

    base_model_prefix = "backbone"

    def __init__(self) -> None:
        super().__init__()
        self.backbone = nn.ModuleDict({"pooler": nn.Linear(2, 2), "norm": nn.BatchNorm1d(2), "body": nn.Linear(2, 2)})
        self.classifier = nn.Linear(2, 1)


@pytest.mark.parametrize(
    "missing",
    [
        pytest.param(["backbone.pooler.weight", "backbone.pooler.bias", "classifier.bias"], id="prefixed"),
        pytest.param(["pooler.weight", "pooler.bias", "classifier.bias"], id="base-prefix-left-out"),
    ],
)
def test_loading_reports_map_to_parameter_names_with_or_without_the_base_prefix_and_skip_buffers(missing):
    buffers = ["backbone.norm.running_mean", "norm.running_var", "backbone.norm.num_batches_tracked"]
    info = {"missing_keys": {*missing, *buffers}, "mismatched_keys": {("classifier.weight", (2, 2), (1, 2))}}
    assert newly_initialized_parameters(WithBackbone(), info) == (
        "backbone.pooler.weight",
        "backbone.pooler.bias",
        "classifier.weight",
        "classifier.bias",
    ), "parameters only, in named_parameters() order, mismatched ones included"


# --------------------------------------------------------------------------------------- the implicit schedule
@pytest.mark.parametrize("checkpoint", list(NEW_PARAMETERS))
def test_new_parameters_train_from_phase_zero_and_no_later_phase_holds_them(checkpoints, checkpoint):
    model = pretrained(checkpoints[checkpoint])
    structure = phases(generate_schedule(model, phase0_extra=()))
    schedule = generate_schedule(model)

    new = NEW_PARAMETERS[checkpoint]
    assert structure[0] == list(CLASSIFIER), "the structure alone puts the head first"
    assert schedule[0].params == CLASSIFIER + new[:2], "the head, then the pooler"
    assert sorted(schedule[0].params) == sorted(new) and len(schedule[0].params) == len(new)
    assert not set(new) & {name for phase in schedule.phases[1:] for name in phase.params}
    assert phases(schedule)[1:] == without(new, structure[1:]), "otherwise the blocks phases, in their order"
    assert [phase.index for phase in schedule.phases] == list(range(len(schedule.phases)))


def test_a_bert_pooler_s_own_phase_is_dropped(bare_bert):
    model = pretrained(bare_bert)
    structure = phases(generate_schedule(model, phase0_extra=()))
    assert structure[1] == list(BERT_POOLER)
    assert phases(generate_schedule(model)) == [list(CLASSIFIER + BERT_POOLER), *structure[2:]]


def test_a_deberta_context_pooler_leaves_the_rest_of_its_phase_in_place(checkpoints):
    model = pretrained(checkpoints["deberta-bare"])
    structure = phases(generate_schedule(model, phase0_extra=()))
    assert structure[1] == [
        "model.deberta.encoder.rel_embeddings.weight",
        "model.deberta.encoder.LayerNorm.weight",
        "model.deberta.encoder.LayerNorm.bias",
        *DEBERTA_POOLER,
    ]
    assert phases(generate_schedule(model))[1] == structure[1][:3]


def test_naive_mode_also_trains_them_from_phase_zero(bare_bert):
    model = pretrained(bare_bert)
    structure = phases(generate_schedule(model, mode="naive", phase0_extra=()))
    schedule = phases(generate_schedule(model, mode="naive"))
    assert structure[:2] == [["model.classifier.bias", "model.classifier.weight"], list(BERT_POOLER[::-1])]
    assert schedule[0] == ["model.classifier.bias", "model.classifier.weight", *BERT_POOLER]
    assert schedule[1:] == without(BERT_POOLER, structure[1:])


def test_max_phases_counts_the_phases_left_and_keeps_phase_zero_whole(bare_bert):
    schedule = generate_schedule(pretrained(bare_bert), max_phases=2)
    assert len(schedule.phases) == 2
    assert schedule[0].params == CLASSIFIER + BERT_POOLER


def test_the_presets_default_head_is_phase_zero_so_new_parameters_train_with_it(bare_bert):
    model = pretrained(bare_bert)
    assert presets.freeze(model)[0].params == CLASSIFIER + BERT_POOLER
    assert presets.freeze(model, head=["model.classifier.*"])[0].params == CLASSIFIER, "a head given is followed"


def test_a_model_built_from_a_config_keeps_the_schedule_of_its_structure_exactly():
    model = SequenceClassifier(backbone=BERT, vocab_size=100)
    names = [name for name, _ in model.named_parameters()]
    layer = lambda i: [n for n in names if n.startswith(f"model.bert.encoder.layer.{i}.")]  # noqa: E731
    for mode in ("blocks", "naive"):
        assert phases(generate_schedule(model, mode=mode)) == phases(generate_schedule(model, mode, phase0_extra=()))
    assert phases(generate_schedule(model)) == [
        list(CLASSIFIER),
        list(BERT_POOLER),
        layer(1),
        layer(0),
        [n for n in names if n.startswith("model.bert.embeddings.")],
    ]


def test_phase0_extra_must_name_parameters_of_the_model():
    with pytest.raises(ScheduleError, match=r"phase0_extra.*no parameter of the model.*head\.nothing"):
        generate_schedule(nn.Sequential(nn.Linear(2, 2), nn.Linear(2, 1)), phase0_extra=["head.nothing"])


def test_phase0_extra_moves_any_parameter_of_a_plain_module():
    module = nn.Sequential(nn.Linear(2, 2), nn.Linear(2, 2), nn.Linear(2, 1))
    assert phases(generate_schedule(module, phase0_extra=["0.bias"])) == [
        ["2.weight", "2.bias", "0.bias"],
        ["1.weight", "1.bias"],
        ["0.weight"],
    ]


# ------------------------------------------------------------------------------------------- a run and its plan
def run_config(tmp_path: Path, checkpoint: str, *overrides: str) -> DictConfig:
    """``python -m ftexp model=bert_base model.pretrained=<checkpoint>`` on a small synthetic task."""
    return compose_config(tmp_path, "model=bert_base", f"model.pretrained={checkpoint}", *SMALL_SYNTHETIC, *overrides)


def test_the_run_s_schedule_and_the_callback_s_are_the_same(tmp_path, bare_bert):
    cfg = run_config(tmp_path, bare_bert, "schedule=implicit", "debug=limit")
    objects = build(cfg)
    resolved = resolve_run_schedule(cfg, objects.model)
    assert resolved is not None and resolved.schedule[0].params == CLASSIFIER + BERT_POOLER
    assert objects.fts is not None
    objects.fts.setup(objects.trainer, objects.model, "fit")  # generates the implicit schedule at fit start
    assert phases(objects.fts.schedule) == phases(resolved.schedule)


@pytest.mark.parametrize("checkpoint", list(NEW_PARAMETERS))
def test_the_plan_expects_what_from_pretrained_reports_without_loading_weights(checkpoints, checkpoint):
    model = pretrained(checkpoints[checkpoint])
    expected, unread = expected_newly_initialized(checkpoints[checkpoint], model.model)
    assert unread is None
    assert tuple(f"model.{name}" for name in expected) == model.newly_initialized


def test_without_a_weights_file_the_plan_says_it_cannot_know(tmp_path, bare_bert):
    model = pretrained(bare_bert)
    (tmp_path / "config.json").write_text((Path(bare_bert) / "config.json").read_text())
    expected, unread = expected_newly_initialized(str(tmp_path), model.model)
    assert expected == ()
    assert unread is not None and "holds none of model.safetensors.index.json, model.safetensors" in unread


def test_the_dry_run_names_the_new_modules_and_plans_the_run_s_phases(tmp_path, capsys, bare_bert):
    result = run(run_config(tmp_path, bare_bert, "schedule=implicit", "dry_run=true"))
    printed = capsys.readouterr().out

    assert (
        "note: newly initialized by from_pretrained, trained from phase 0: model.bert.pooler.*, model.classifier.*"
        in printed.splitlines()
    )
    plan = result["plan"]
    assert plan.parameters[0] == "model.classifier.*, model.bert.pooler.*"
    assert [row.params for row in plan.rows] == [p.params for p in generate_schedule(pretrained(bare_bert)).phases]
    assert plan.problems == []


def test_a_model_from_a_config_gets_no_note(tmp_path):
    cfg = compose_config(tmp_path, "schedule=implicit")
    plan = plan_phases(cfg, build_skeleton(cfg, instantiate(cfg.data)))
    assert not [note for note in plan.notes if "newly initialized" in note]
    assert plan.parameters[:2] == ["model.classifier.*", "model.bert.pooler.*"]


EXPLICIT = """\
0:
  params: [model.classifier.*]
1:
  params: [model.bert.pooler.*, model.bert.encoder.layer.1.*]
"""


def test_an_explicit_schedule_is_followed_as_written_and_the_plan_says_where_the_new_pooler_waits(tmp_path, bare_bert):
    schedule_file = tmp_path / "schedule.yaml"
    schedule_file.write_text(EXPLICIT)
    cfg = run_config(tmp_path, bare_bert, "schedule=explicit", f"schedule.callbacks.fts.ft_schedule={schedule_file}")
    plan = plan_phases(cfg, build_skeleton(cfg, instantiate(cfg.data)))

    assert plan.parameters[:2] == ["model.classifier.*", "model.bert.pooler.*, model.bert.encoder.layer.1.*"]
    assert (
        "newly initialized by from_pretrained, yet not trained from phase 0 (the explicit schedule is followed as "
        "written): model.bert.pooler.* from phase 1" in plan.notes
    )
