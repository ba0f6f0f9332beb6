"""The schedule a run trains with is parsed and resolved once, before any Trainer exists, and handed on as one
object: the callback, the resolved-schedule file and the dry-run plan all see that object."""

from __future__ import annotations

import pytest

import ftexp.schedule.parse as parse
from ftexp.config import validate_config
from ftexp.run_schedule import recipe_line
from ftexp.train import build
from tests.helpers import compose_config


def test_an_explicit_schedule_is_parsed_once_and_the_callback_gets_the_resolved_object(tmp_path, monkeypatch):
    calls = []
    real_parse = parse.parse_schedule

    def counting_parse(raw, source="<dict>"):
        calls.append(source)
        return real_parse(raw, source)

    monkeypatch.setattr(parse, "parse_schedule", counting_parse)
    parse._parsed_file.cache_clear()
    cfg = compose_config(tmp_path, "schedule=explicit", "debug=limit")
    validate_config(cfg)  # the start-up check reads the file too (before any run directory exists)
    objects = build(cfg)
    assert len(calls) == 1 and calls[0].endswith(".yaml"), calls
    assert objects.fts is not None
    given = objects.fts.user_schedule
    assert given.resolved and given.source == calls[0]
    names = {name for name, _ in objects.model.named_parameters()}
    assert set(given.params_through(given.max_depth)) <= names, "exact parameter names, nothing left to match"


def test_a_preset_is_built_as_a_schedule_and_never_round_trips_through_a_dict(tmp_path, monkeypatch):
    calls = []
    monkeypatch.setattr(parse, "parse_schedule", lambda raw, source="<dict>": calls.append(source))
    parse._parsed_file.cache_clear()
    objects = build(compose_config(tmp_path, "schedule=freeze_unfreeze", "debug=limit"))
    assert calls == []
    assert objects.fts is not None and objects.fts.user_schedule.resolved


@pytest.mark.parametrize(
    ("schedule", "recipe"),
    [
        ("nofts", None),
        ("implicit", "implicit(mode=blocks)"),
        ("explicit", "explicit(tiny_bert_3phase.yaml)"),
        ("lp_ft", "lp_ft()"),
        (
            "ulmfit",
            "ulmfit(lr=0.001, factor=0.384615, epochs_per_phase=1); "
            "SlantedTriangularLR(total_steps=auto, cut_frac=0.1, ratio=32)",
        ),
    ],
)
def test_the_recipe_line_names_the_schedule_its_arguments_and_the_lr_scheduler_it_brings(tmp_path, schedule, recipe):
    assert recipe_line(compose_config(tmp_path, f"schedule={schedule}")) == recipe
