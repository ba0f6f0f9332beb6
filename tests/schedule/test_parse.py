"""Specifications of schedule parsing and name resolution: every input form gives the same Schedule, exact names win
over patterns, patterns are anchored at the start of a name (``re.match``), and a resolved schedule round-trips
through YAML."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import yaml
from omegaconf import OmegaConf
from torch import nn

from ftexp.schedule import (
    ClassSpec,
    LRSchedulerSpec,
    OptimizerSpec,
    Phase,
    Schedule,
    ScheduleError,
    dump_schedule_yaml,
    load_schedule,
    resolve_schedule,
)
from tests.tiny_models import TinyModule

TINY_NAMES = [name for name, _ in TinyModule().named_parameters()]  # net.0.weight ... net.6.bias
FULL = {
    0: {"params": ["net.6.weight", "net.6.bias"], "max_transition_epoch": 2},
    1: {
        "params": ["net.4.*"],
        "max_transition_epoch": 5,
        "lr": 1e-4,
        "new_lr_scheduler": {
            "lr_scheduler_init": {
                "class_path": "torch.optim.lr_scheduler.StepLR",
                "init_args": {"step_size": 2, "gamma": 0.5},
            },
            "pl_lrs_cfg": {"interval": "epoch", "frequency": 1, "name": "phase1_lr"},
            "init_pg_lrs": [1e-4, 2e-4],
        },
        "new_optimizer": {"optimizer_init": {"class_path": "torch.optim.SGD", "init_args": {"lr": 1e-4}}},
    },
    2: {"params": ["net.2.*", "net.0.*"], "lr": 2e-5},
}

FULL_PHASES = (
    Phase(0, ("net.6.weight", "net.6.bias"), max_transition_epoch=2),
    Phase(
        1,
        ("net.4.*",),
        max_transition_epoch=5,
        lr=1e-4,
        new_lr_scheduler=LRSchedulerSpec(
            ClassSpec("torch.optim.lr_scheduler.StepLR", {"step_size": 2, "gamma": 0.5}),
            pl_lrs_cfg={"interval": "epoch", "frequency": 1, "name": "phase1_lr"},
            init_pg_lrs=(1e-4, 2e-4),
        ),
        new_optimizer=OptimizerSpec(ClassSpec("torch.optim.SGD", {"lr": 1e-4})),
    ),
    Phase(2, ("net.2.*", "net.0.*"), lr=2e-5),
)


def with_string_keys(raw: dict) -> dict:
    return {str(key): value for key, value in raw.items()}


class Deep(nn.Module):
    """Eleven Linear layers: ``net.1.*`` and ``net.10.*`` share the prefix ``net.1``."""

    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Sequential(*[nn.Linear(2, 2) for _ in range(11)])


class Gated(nn.Module):
    """Two parameters where one name is a prefix of the other: ``gate`` and ``gate_bias``."""

    def __init__(self) -> None:
        super().__init__()
        self.gate = nn.Parameter(torch.ones(1))
        self.gate_bias = nn.Parameter(torch.zeros(1))
        self.out = nn.Linear(1, 1)


def names_of(module: nn.Module) -> list[str]:
    return [name for name, _ in module.named_parameters()]


# --------------------------------------------------------------------------------------------------- input forms
def test_a_full_phase_is_parsed_into_the_schedule_dataclasses():
    schedule = load_schedule(FULL)
    assert schedule.phases == FULL_PHASES
    assert schedule.source == "<dict>"
    assert schedule.max_depth == 2


def test_omitted_phase_keys_take_the_fts_defaults():
    phase = load_schedule({0: {"params": ["a"]}})[0]
    assert phase == Phase(0, ("a",), max_transition_epoch=-1, lr=None, new_lr_scheduler=None, new_optimizer=None)


@pytest.mark.parametrize(
    "make",
    [
        pytest.param(lambda tmp: str(dump_schedule_yaml(FULL, tmp / "s.yaml")), id="yaml-path-str"),
        pytest.param(lambda tmp: dump_schedule_yaml(FULL, tmp / "s.yaml"), id="yaml-path-Path"),
        pytest.param(lambda tmp: FULL, id="dict-int-keys"),
        pytest.param(lambda tmp: with_string_keys(FULL), id="dict-str-keys"),
        pytest.param(lambda tmp: OmegaConf.create(FULL), id="omegaconf-int-keys"),
        pytest.param(lambda tmp: OmegaConf.create(with_string_keys(FULL)), id="omegaconf-str-keys"),
    ],
)
def test_yaml_paths_dicts_and_omegaconf_configs_give_the_same_schedule(tmp_path, make):
    spec = make(tmp_path)
    schedule = load_schedule(spec)
    assert schedule.phases == FULL_PHASES
    assert schedule.source == (str(spec) if isinstance(spec, str | Path) else "<dict>")


def test_a_hand_written_yaml_file_parses_like_the_dict(tmp_path):
    path = tmp_path / "schedule.yaml"
    path.write_text(
        "0:\n"
        "  params:\n"
        "  - net.6.weight\n"
        "  - net.6.bias\n"
        "  max_transition_epoch: 2\n"
        "1:\n"
        "  params: [net.4.*]\n"
        "  max_transition_epoch: 5\n"
        "  lr: 1.0e-4\n"
        "  new_lr_scheduler:\n"
        "    lr_scheduler_init:\n"
        "      class_path: torch.optim.lr_scheduler.StepLR\n"
        "      init_args: {step_size: 2, gamma: 0.5}\n"
        "    pl_lrs_cfg: {interval: epoch, frequency: 1, name: phase1_lr}\n"
        "    init_pg_lrs: [1.0e-4, 2.0e-4]\n"
        "  new_optimizer:\n"
        "    optimizer_init: {class_path: torch.optim.SGD, init_args: {lr: 1.0e-4}}\n"
        "2:\n"
        "  params: [net.2.*, net.0.*]\n"
        "  lr: 2.0e-5\n"
    )
    assert load_schedule(path).phases == FULL_PHASES


def test_fts_legacy_list_phases_are_read_as_params(tmp_path):
    """Older FTS schedules write a phase as its bare parameter list."""
    legacy = {0: ["net.6.weight", "net.6.bias"], 1: ["net.4.*"]}
    expected = load_schedule({0: {"params": ["net.6.weight", "net.6.bias"]}, 1: {"params": ["net.4.*"]}})
    assert load_schedule(legacy).phases == expected.phases
    path = tmp_path / "legacy.yaml"
    path.write_text("0:\n- net.6.weight\n- net.6.bias\n1:\n- net.4.*\n")
    assert load_schedule(path).phases == expected.phases
    assert load_schedule(OmegaConf.create(legacy)).phases == expected.phases


def test_a_single_string_params_is_one_entry():
    assert load_schedule({0: {"params": "net.6.*"}})[0].params == ("net.6.*",)


@pytest.mark.parametrize("params", [[], "", [""], [1], None, {"a": 1}])
def test_params_must_be_a_non_empty_list_of_names(params):
    with pytest.raises(ScheduleError, match=r"'params' must be a non-empty list") as err:
        load_schedule({0: {"params": params}})
    assert (err.value.phase, err.value.key) == (0, "params")


def test_a_phase_without_params_is_rejected():
    with pytest.raises(ScheduleError, match=r"missing required key") as err:
        load_schedule({0: {"params": ["a"]}, 1: {"lr": 1e-3}})
    assert (err.value.phase, err.value.key) == (1, "params")


# ---------------------------------------------------------------------------------------- names and patterns
def test_an_exact_name_selects_only_that_parameter():
    raw = {
        0: {"params": ["net.10.weight", "net.10.bias"]},
        1: {"params": ["net.1.weight"]},
        2: {"params": ["net.1.bias"]},
    }
    schedule, _ = resolve_schedule(load_schedule(raw), names_of(Deep()))
    assert [phase.params for phase in schedule.phases] == [
        ("net.10.weight", "net.10.bias"),
        ("net.1.weight",),
        ("net.1.bias",),
    ]


def test_an_exact_name_wins_over_reading_it_as_a_pattern():
    """As a pattern ``gate`` would also match ``gate_bias`` (thawed in phase 0); as an exact name it does not."""
    raw = {0: {"params": ["out.*", "gate_bias"]}, 1: {"params": ["gate"]}}
    schedule, never_thawed = resolve_schedule(load_schedule(raw), names_of(Gated()))
    assert schedule[1].params == ("gate",)
    assert never_thawed == []


def test_a_pattern_selects_every_name_starting_with_a_match_in_registration_order():
    schedule, never_thawed = resolve_schedule(load_schedule({0: {"params": ["net.1"]}}), names_of(Deep()))
    assert schedule[0].params == ("net.1.weight", "net.1.bias", "net.10.weight", "net.10.bias")
    assert "net.0.weight" in never_thawed and "net.2.weight" in never_thawed


@pytest.mark.parametrize("pattern", ["weight", "0.weight", r"\.weight", "bias$"])
def test_a_pattern_must_match_at_the_start_of_a_name(pattern):
    with pytest.raises(ScheduleError, match=r"matches no parameter of the model") as err:
        resolve_schedule(load_schedule({0: {"params": [pattern]}}), names_of(Deep()))
    assert (err.value.phase, err.value.key, err.value.value) == (0, "params", pattern)


def test_a_pattern_may_match_anywhere_when_it_says_so():
    schedule, _ = resolve_schedule(load_schedule({0: {"params": [r".*\.bias"]}}), names_of(Deep()))
    assert schedule[0].params == tuple(f"net.{i}.bias" for i in range(11))


def test_a_parameter_selected_twice_within_one_phase_is_listed_once():
    raw = {0: {"params": ["net.0.*", "net.0.weight", "net.0"]}}
    schedule, _ = resolve_schedule(load_schedule(raw), names_of(Deep()))
    assert schedule[0].params == ("net.0.weight", "net.0.bias")


def test_resolution_keeps_everything_but_the_names():
    schedule, _ = resolve_schedule(load_schedule(FULL), TINY_NAMES)
    assert schedule.source == "<dict>"
    for parsed, resolved in zip(FULL_PHASES, schedule.phases, strict=True):
        assert resolved == Phase(**{**parsed.__dict__, "params": resolved.params})
    assert schedule[1].params == ("net.4.weight", "net.4.bias")
    assert schedule.params_through(1) == ["net.6.weight", "net.6.bias", "net.4.weight", "net.4.bias"]


# ------------------------------------------------------------------------------------------------- YAML round-trip
def test_a_resolved_schedule_round_trips_through_yaml(tmp_path):
    schedule, _ = resolve_schedule(load_schedule(FULL), TINY_NAMES)
    path = dump_schedule_yaml(schedule.to_dict(), tmp_path / "out" / "resolved.yaml")
    assert path.is_file()
    reloaded = load_schedule(path)
    assert reloaded.phases == schedule.phases
    assert reloaded.to_dict() == schedule.to_dict()
    assert resolve_schedule(reloaded, TINY_NAMES)[0].phases == schedule.phases


def test_the_dumped_yaml_uses_integer_phase_keys_in_order(tmp_path):
    schedule, _ = resolve_schedule(load_schedule(with_string_keys(FULL)), TINY_NAMES)
    path = dump_schedule_yaml(schedule.to_dict(), tmp_path / "resolved.yaml")
    raw = yaml.safe_load(path.read_text())
    assert list(raw) == [0, 1, 2]
    assert raw[2] == {"params": ["net.2.weight", "net.2.bias", "net.0.weight", "net.0.bias"], "lr": 2e-5}


def test_to_dict_omits_defaults_like_an_fts_schedule():
    schedule = Schedule((Phase(0, ("a",)), Phase(1, ("b",), lr=1e-3)))
    assert schedule.to_dict() == {0: {"params": ["a"]}, 1: {"params": ["b"], "lr": 1e-3}}


def test_a_resolved_schedule_is_only_checked_against_the_model_it_is_given():
    names = ["net.0.weight", "net.0.bias", "net.2.weight", "net.2.bias"]
    resolved, never = resolve_schedule(load_schedule({0: {"params": ["net.2.*"]}}), names)
    assert resolved.resolved and never == ["net.0.weight", "net.0.bias"]
    assert resolve_schedule(resolved, names) == (resolved, never), "nothing is matched again"
    with pytest.raises(ScheduleError, match=r"was resolved for another model: 2 of its parameters are not in this one"):
        resolve_schedule(resolved, ["head.weight", "head.bias"])


def test_a_schedule_file_is_parsed_once_while_unchanged_and_again_after_an_edit(tmp_path):
    path = tmp_path / "schedule.yaml"
    path.write_text("0: {params: [net.6.weight]}\n")
    first = load_schedule(path)
    assert load_schedule(path) is first, "the start-up check and the run share the parsed object"
    path.write_text("0: {params: [net.6.weight, net.6.bias]}\n")
    edited = load_schedule(path)
    assert edited.phases[0].params == ("net.6.weight", "net.6.bias")
