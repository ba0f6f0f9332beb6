"""Specifications of the closest names offered when a schedule entry selects no parameter: a typo in an exact name or
in a pattern is answered with the repaired entry and the names it would select, in one ScheduleError that names the
schedule file, the phase and the entry."""

from __future__ import annotations

import pytest

from ftexp.schedule import ScheduleError, load_schedule, resolve_schedule
from ftexp.schedule.suggest import MAX_SUGGESTIONS, no_match_hint, suggest_entries
from tests.tiny_models import TinyModule

TINY_NAMES = [name for name, _ in TinyModule().named_parameters()]  # net.0.weight, net.0.bias, ... net.6.bias
LAYER_TENSORS = ["attention.self.query.weight", "attention.self.query.bias", "output.dense.weight"]


def bert_names(prefix: str = "model.bert", layers: int = 12) -> list[str]:
    """A BERT-style classifier's parameter names, in registration order: embeddings, layers, pooler, head."""
    names = [f"{prefix}.embeddings.word_embeddings.weight", f"{prefix}.embeddings.LayerNorm.weight"]
    names += [f"{prefix}.encoder.layer.{i}.{tensor}" for i in range(layers) for tensor in LAYER_TENSORS]
    names += [f"{prefix}.pooler.dense.weight", "model.classifier.weight", "model.classifier.bias"]
    return names


def failure(entry: str, names: list[str], tmp_path=None) -> ScheduleError:
    """The error resolving a two-phase schedule whose phase 1 is ``entry``, from a YAML file when tmp_path is given."""
    raw = {0: {"params": [names[-1]]}, 1: {"params": [entry]}}
    source = raw
    if tmp_path is not None:
        source = tmp_path / "my_schedule.yaml"
        source.write_text(f"0:\n  params:\n  - {names[-1]}\n1:\n  params:\n  - '{entry}'\n")
    with pytest.raises(ScheduleError, match="matches no parameter of the model") as err:
        resolve_schedule(load_schedule(source), names)
    return err.value


def suggested(entry: str, names: list[str]) -> list[str]:
    return [suggestion.entry for suggestion in suggest_entries(entry, names)]


# ------------------------------------------------------------------------------------------------------ exact names
def test_a_misspelt_exact_name_gets_the_name_it_meant():
    error = failure("net.4.wieght", TINY_NAMES)

    assert str(error) == (
        "[<dict>, phase 1, key 'params'] matches no parameter of the model; did you mean 'net.4.weight'? "
        "(got 'net.4.wieght')"
    )


def test_an_exact_name_with_two_typos_gets_the_closest_name_of_the_same_depth():
    assert suggested("net.4.wieghtt", TINY_NAMES) == ["net.4.weight"]
    assert suggested("model.bert.poolr.dense.weigt", bert_names()) == ["model.bert.pooler.dense.weight"]


# --------------------------------------------------------------------------------------------------------- patterns
def test_a_pattern_typo_names_the_schedule_file_the_phase_the_pattern_and_the_repaired_pattern(tmp_path):
    error = failure("net.O.*", TINY_NAMES, tmp_path)

    assert (error.source, error.phase, error.key, error.value) == (
        str(tmp_path / "my_schedule.yaml"),
        1,
        "params",
        "net.O.*",
    )
    assert str(error) == (
        f"[{tmp_path / 'my_schedule.yaml'}, phase 1, key 'params'] matches no parameter of the model; "
        "did you mean 'net.0.*' (matches net.0.weight, net.0.bias)? (got 'net.O.*')"
    )


def test_a_letter_o_for_a_zero_in_a_layer_number_suggests_layer_10_not_layer_1():
    names = bert_names()

    assert suggested("model.bert.encoder.layer.1O.*", names) == ["model.bert.encoder.layer.10.*"]
    assert "(matches model.bert.encoder.layer.10.attention.self.query.weight and 2 more)" in str(
        failure("model.bert.encoder.layer.1O.*", names)
    )


@pytest.mark.parametrize(
    ("entry", "meant"),
    [
        ("model.classifer.*", "model.classifier.*"),  # a letter left out
        ("model.classsifier.*", "model.classifier.*"),  # a letter doubled
        ("model.calssifier.*", "model.classifier.*"),  # two letters swapped
        ("model.bert.pooler.dnese.*", "model.bert.pooler.dense.*"),
        (r"model\.bert\.encoder\.layers\.\d+", r"model\.bert\.encoder\.layer\.\d+"),  # encoder.layer.N, not layers
        ("model.bert.embedings.*", "model.bert.embeddings.*"),
    ],
)
def test_a_one_character_typo_in_a_pattern_is_repaired_where_the_pattern_stops_matching(entry, meant):
    assert suggested(entry, bert_names())[0] == meant
    assert f"did you mean '{meant}'" in str(failure(entry, bert_names()))


def test_a_pattern_of_another_model_gets_the_same_pattern_on_this_model_s_module_path():
    roberta = bert_names("model.roberta")

    assert suggested(r"model.bert.encoder.layer.(8|9|10|11)\..*", roberta) == [
        r"model.roberta.encoder.layer.(8|9|10|11)\..*"
    ]


def test_a_module_another_model_keeps_one_level_higher_is_found_one_level_deeper():
    """DeBERTa's pooler is model.pooler, BERT's model.bert.pooler; a model without any pooler gets no suggestion,
    rather than a module that merely shares a few letters (model.roberta)."""
    assert suggested("model.pooler.*", bert_names()) == ["model.bert.pooler.*"]
    assert suggested("model.pooler.*", [n for n in bert_names("model.roberta") if ".pooler." not in n]) == []


def test_a_wrongly_cased_module_gets_the_module_of_that_name():
    names = ["model.encoder.LayerNorm.weight", "model.encoder.LayerNorm.bias", "model.encoder.layer.0.weight"]

    assert suggested("model.encoder.layernorm.*", names) == ["model.encoder.LayerNorm.*"]


def test_layers_the_model_does_not_have_are_answered_with_the_layers_it_has():
    """A schedule written for a 24-layer model, run on a 12-layer one."""
    error = failure(r"model.bert.encoder.layer.(20|21)\..*", bert_names())

    assert "did you mean" not in str(error)
    assert (
        "after 'model.bert.encoder.layer.' the model's names continue with '0', '1', '2', '3', '4', '5', ... "
        r"(12 in all), none with '(20|21)\..*'"
    ) in str(error)


def test_an_entry_close_to_nothing_gets_no_suggestion():
    assert suggest_entries("decoder.*", bert_names()) == []
    assert no_match_hint("decoder.*", bert_names()) == ""
    assert str(failure("xyz", TINY_NAMES)).endswith("matches no parameter of the model (got 'xyz')")


def test_at_most_three_suggestions_the_cheapest_edits_only():
    """``layer.1x`` is one edit from layer.1 (x -> an escaped dot), layer.10, layer.11 and layer.1* (x removed)
    alike: three are shown, the most specific first, then in registration order."""
    message = no_match_hint("model.bert.encoder.layer.1x.*", bert_names())

    assert suggested("model.bert.encoder.layer.1x.*", bert_names()) == [
        r"model.bert.encoder.layer.1\..*",
        "model.bert.encoder.layer.10.*",
        "model.bert.encoder.layer.11.*",
    ]
    assert len(suggest_entries("model.bert.encoder.layer.1x.*", bert_names())) == MAX_SUGGESTIONS
    assert message == (
        r"; did you mean 'model.bert.encoder.layer.1\..*' (matches model.bert.encoder.layer.1.attention.self.query"
        ".weight and 2 more), 'model.bert.encoder.layer.10.*' (matches model.bert.encoder.layer.10.attention.self"
        ".query.weight and 2 more) or 'model.bert.encoder.layer.11.*' (matches model.bert.encoder.layer.11.attention"
        ".self.query.weight and 2 more)?"
    )


def test_every_suggestion_selects_what_it_says():
    for entry in ["net.O.*", "net.4.wieght", "nett.*"]:
        for suggestion in suggest_entries(entry, TINY_NAMES):
            schedule, _ = resolve_schedule(load_schedule({0: {"params": [suggestion.entry]}}), TINY_NAMES)
            assert schedule[0].params == suggestion.matched
