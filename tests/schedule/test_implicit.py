"""Specifications of the implicit schedule generators: ``naive`` is exactly FTS's default heuristic; ``blocks`` thaws
whole modules (head, neck, repeated blocks from the output side down, embeddings/stem last) and works on the meta
device."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from transformers import AutoModelForSequenceClassification, BertConfig

from ftexp.schedule import Schedule, ScheduleError, generate_schedule
from tests.tiny_models import TinyModule, deberta_v3_base_config, mlp

TINY_BERT = BertConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=37, vocab_size=100)


def fts_default_schedule(module: nn.Module) -> list[list[str]]:
    """FTS's ``gen_ft_schedule`` loop, transcribed: reversed named_parameters, pairs, an odd leftover last."""
    param_lists, cur_group = [], []
    model_params = list(module.named_parameters())[::-1]
    for i, (name, _) in enumerate(model_params):
        if i % 2 == 0:
            cur_group = [name]
        else:
            cur_group.append(name)
            param_lists.append(cur_group)
    if len(model_params) % 2 == 1:
        param_lists.append([model_params[-1][0]])
    return param_lists


def phases(schedule: Schedule) -> list[list[str]]:
    return [list(phase.params) for phase in schedule.phases]


def flat(schedule: Schedule) -> list[str]:
    return [name for phase in schedule.phases for name in phase.params]


def names_of(module: nn.Module) -> list[str]:
    return [name for name, _ in module.named_parameters()]


def under(prefix: str, names: list[str]) -> list[str]:
    return [name for name in names if name.startswith(prefix + ".")]


@pytest.fixture(scope="module")
def tiny_bert() -> nn.Module:
    torch.manual_seed(0)
    return AutoModelForSequenceClassification.from_config(TINY_BERT)


@pytest.fixture(scope="module")
def meta_deberta() -> nn.Module:
    with torch.device("meta"):
        return AutoModelForSequenceClassification.from_config(deberta_v3_base_config())


class Block(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(channels)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(channels)


class ResNetLike(nn.Module):
    """Stem conv+bn, four stages of two blocks each, a classifier ``fc``: torchvision's ResNet layout."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 4, 7, bias=False)
        self.bn1 = nn.BatchNorm2d(4)
        self.layer1 = nn.Sequential(Block(4), Block(4))
        self.layer2 = nn.Sequential(Block(8), Block(8))
        self.layer3 = nn.Sequential(Block(16), Block(16))
        self.layer4 = nn.Sequential(Block(32), Block(32))
        self.fc = nn.Linear(32, 10)


class SharedWeightLinears(nn.Module):
    """Two Linears sharing one weight (``second.weight`` is ``first.weight``), plus a head."""

    def __init__(self) -> None:
        super().__init__()
        self.first = nn.Linear(4, 4)
        self.second = nn.Linear(4, 4)
        self.second.weight = self.first.weight
        self.head = nn.Linear(4, 1)


class TiedEmbeddingLM(nn.Module):
    """An LM whose output projection reuses the input embedding matrix."""

    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Embedding(10, 4)
        self.body = nn.Linear(4, 4)
        self.lm_head = nn.Linear(4, 10)
        self.lm_head.weight = self.embed.weight


# ------------------------------------------------------------------------------------------------------- naive
def test_naive_on_an_odd_parameter_count_pairs_from_the_output_and_leaves_the_first_parameter_alone():
    module = nn.Sequential(nn.Linear(2, 2), nn.Linear(2, 2), nn.Linear(2, 2, bias=False))  # 5 parameters
    assert phases(generate_schedule(module, mode="naive")) == [
        ["2.weight", "1.bias"],
        ["1.weight", "0.bias"],
        ["0.weight"],
    ]
    assert phases(generate_schedule(module, mode="naive")) == fts_default_schedule(module)


def test_naive_on_an_even_parameter_count_gives_pairs_only():
    assert phases(generate_schedule(mlp(), mode="naive")) == [
        ["6.bias", "6.weight"],
        ["4.bias", "4.weight"],
        ["2.bias", "2.weight"],
        ["0.bias", "0.weight"],
    ]


@pytest.mark.parametrize(
    "make",
    [
        pytest.param(lambda: nn.Linear(3, 1, bias=False), id="one-parameter"),
        pytest.param(lambda: nn.Linear(3, 1), id="two-parameters"),
        pytest.param(TinyModule, id="tiny-module"),
        pytest.param(ResNetLike, id="resnet-like"),
        pytest.param(TiedEmbeddingLM, id="tied-embeddings"),
    ],
)
def test_naive_is_exactly_the_fts_default_heuristic(make):
    module = make()
    schedule = generate_schedule(module, mode="naive")
    assert phases(schedule) == fts_default_schedule(module)
    assert schedule.source == "<implicit:naive>"
    assert all(phase.index == i for i, phase in enumerate(schedule.phases))


def test_naive_matches_fts_on_a_transformer(tiny_bert):
    assert phases(generate_schedule(tiny_bert, mode="naive")) == fts_default_schedule(tiny_bert)


# ------------------------------------------------------------------------------------------------------ blocks
def test_blocks_thaws_an_mlp_one_linear_at_a_time_from_the_output():
    assert phases(generate_schedule(TinyModule(mlp()))) == [
        ["net.6.weight", "net.6.bias"],
        ["net.4.weight", "net.4.bias"],
        ["net.2.weight", "net.2.bias"],
        ["net.0.weight", "net.0.bias"],
    ]
    assert phases(generate_schedule(mlp(), mode="blocks")) == [
        ["6.weight", "6.bias"],
        ["4.weight", "4.bias"],
        ["2.weight", "2.bias"],
        ["0.weight", "0.bias"],
    ]
    assert generate_schedule(mlp()).source == "<implicit:blocks>"


def test_blocks_on_a_two_layer_bert_gives_head_pooler_layers_then_embeddings(tiny_bert):
    names = names_of(tiny_bert)
    assert phases(generate_schedule(tiny_bert)) == [
        ["classifier.weight", "classifier.bias"],
        ["bert.pooler.dense.weight", "bert.pooler.dense.bias"],
        under("bert.encoder.layer.1", names),
        under("bert.encoder.layer.0", names),
        under("bert.embeddings", names),
    ]


@pytest.mark.parametrize("mode", ["naive", "blocks"])
def test_every_bert_parameter_is_in_exactly_one_phase(tiny_bert, mode):
    schedule = generate_schedule(tiny_bert, mode=mode)
    assert sorted(flat(schedule)) == sorted(names_of(tiny_bert))
    assert len(flat(schedule)) == len(set(flat(schedule)))


def test_blocks_puts_the_classifier_alone_in_phase_zero(tiny_bert):
    assert generate_schedule(tiny_bert)[0].params == ("classifier.weight", "classifier.bias")


def test_blocks_on_a_resnet_thaws_fc_then_stages_from_the_top_then_the_stem():
    module = ResNetLike()
    names = names_of(module)
    assert phases(generate_schedule(module)) == [
        ["fc.weight", "fc.bias"],
        under("layer4", names),
        under("layer3", names),
        under("layer2", names),
        under("layer1", names),
        ["conv1.weight", "bn1.weight", "bn1.bias"],
    ]


@pytest.mark.parametrize("mode", ["naive", "blocks"])
@pytest.mark.parametrize("make", [SharedWeightLinears, TiedEmbeddingLM])
def test_a_tied_parameter_appears_once_under_its_first_name(make, mode):
    module = make()
    schedule = generate_schedule(module, mode=mode)
    assert sorted(flat(schedule)) == sorted(names_of(module))  # named_parameters lists a shared tensor once
    assert len(flat(schedule)) == len(set(flat(schedule)))
    assert "second.weight" not in flat(schedule) and "lm_head.weight" not in flat(schedule)
    tensors = dict(module.named_parameters())
    assert len({id(tensors[name]) for name in flat(schedule)}) == len(flat(schedule))


def test_blocks_on_shared_weight_linears_thaws_the_head_first():
    assert phases(generate_schedule(SharedWeightLinears())) == [
        ["head.weight", "head.bias"],
        ["second.bias"],
        ["first.weight", "first.bias"],
    ]


# ------------------------------------------------------------------------------------------------- max_phases
@pytest.mark.parametrize("cap", [1, 2, 3, 4, 5])
def test_max_phases_merges_neighbouring_phases_keeping_the_head_alone_and_the_order(cap):
    module = ResNetLike()
    full = generate_schedule(module)
    capped = generate_schedule(module, max_phases=cap)
    assert len(capped) == cap
    assert flat(capped) == flat(full)  # same parameters, same order
    if cap > 1:
        assert capped[0].params == full[0].params  # the head is never merged
    # every capped phase is a union of whole, consecutive uncapped phases
    boundaries = {sum(len(p.params) for p in full.phases[:i]) for i in range(len(full) + 1)}
    ends = [sum(len(p.params) for p in capped.phases[: i + 1]) for i in range(len(capped))]
    assert set(ends) <= boundaries
    assert [phase.index for phase in capped.phases] == list(range(cap))


def test_max_phases_of_one_thaws_everything_at_once():
    module = ResNetLike()
    assert phases(generate_schedule(module, max_phases=1)) == [flat(generate_schedule(module))]


@pytest.mark.parametrize("cap", [6, 7, 100])
def test_max_phases_at_or_above_the_phase_count_changes_nothing(cap):
    module = ResNetLike()
    assert generate_schedule(module, max_phases=cap) == generate_schedule(module)


def test_max_phases_also_caps_naive():
    capped = generate_schedule(mlp(), mode="naive", max_phases=2)
    assert phases(capped) == [
        ["6.bias", "6.weight"],
        ["4.bias", "4.weight", "2.bias", "2.weight", "0.bias", "0.weight"],
    ]


def test_max_phases_on_deberta_keeps_the_classifier_alone(meta_deberta):
    capped = generate_schedule(meta_deberta, max_phases=4)
    assert len(capped) == 4
    assert capped[0].params == ("classifier.weight", "classifier.bias")
    assert flat(capped) == flat(generate_schedule(meta_deberta))


# ---------------------------------------------------------------------------------------------------- meta device
def test_blocks_on_the_meta_device_equals_blocks_on_real_weights(tiny_bert):
    with torch.device("meta"):
        meta_bert = AutoModelForSequenceClassification.from_config(TINY_BERT)
    assert generate_schedule(meta_bert) == generate_schedule(tiny_bert)
    assert generate_schedule(meta_bert, mode="naive") == generate_schedule(tiny_bert, mode="naive")
    assert all(p.is_meta for p in meta_bert.parameters())  # generating touched no weights


def test_blocks_on_a_meta_deberta_v3_base_gives_fifteen_phases(meta_deberta):
    names = names_of(meta_deberta)
    schedule = generate_schedule(meta_deberta)
    assert len(schedule) == 15
    assert len(generate_schedule(meta_deberta, mode="naive")) > 90
    assert phases(schedule) == [
        ["classifier.weight", "classifier.bias"],
        [
            "deberta.encoder.rel_embeddings.weight",
            "deberta.encoder.LayerNorm.weight",
            "deberta.encoder.LayerNorm.bias",
            "pooler.dense.weight",
            "pooler.dense.bias",
        ],
        *[under(f"deberta.encoder.layer.{i}", names) for i in range(11, -1, -1)],
        under("deberta.embeddings", names),
    ]
    assert sorted(flat(schedule)) == sorted(names)


# -------------------------------------------------------------------------------------------------------- errors
def test_an_unknown_mode_is_rejected():
    with pytest.raises(ScheduleError, match=r"unknown implicit schedule mode; use 'naive' or 'blocks'") as err:
        generate_schedule(mlp(), mode="nonsense")
    assert (err.value.key, err.value.value) == ("mode", "nonsense")


@pytest.mark.parametrize("cap", [0, -1])
def test_max_phases_below_one_is_rejected(cap):
    with pytest.raises(ScheduleError, match=r"must be >= 1") as err:
        generate_schedule(mlp(), max_phases=cap)
    assert (err.value.key, err.value.value) == ("max_phases", cap)


def test_a_model_without_parameters_is_rejected():
    with pytest.raises(ScheduleError, match=r"the model has no parameters to schedule"):
        generate_schedule(nn.Sequential(nn.ReLU()))
