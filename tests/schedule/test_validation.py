"""Specifications of schedule validation: every misconfiguration fails before training, with a ScheduleError whose
message says what is wrong and where (``[source:line, phase N, key 'k'] problem (got value)``)."""

from __future__ import annotations

import re

import pytest
import torch
from pytorch_lightning.callbacks import Callback

from ftexp import FinetuningScheduler, ScheduleError
from ftexp.callbacks.optim_surgery import build_lr_scheduler
from ftexp.schedule import (
    check_phase_directives,
    group_counts,
    load_schedule,
    parse_lr_scheduler_spec,
    resolve_schedule,
    split_no_decay,
)
from tests.tiny_models import TinyModule, trainer

NAMES = [name for name, _ in TinyModule().named_parameters()]  # net.0.weight, net.0.bias, ... net.6.bias
STEP_LR = {"lr_scheduler_init": {"class_path": "torch.optim.lr_scheduler.StepLR", "init_args": {"step_size": 1}}}
SGD = {"optimizer_init": {"class_path": "torch.optim.SGD", "init_args": {"lr": 1e-3}}}


def two_phases(**phase1) -> dict:
    """The head (net.6) in phase 0, the rest of the MLP in phase 1 with the given extra keys."""
    return {0: {"params": ["net.6.*"]}, 1: {"params": ["net.4.*", "net.2.*", "net.0.*"], **phase1}}


HEAD_AND_NET4 = {0: {"params": ["net.6.*"]}, 1: {"params": ["net.4.*"]}}  # net.2 and net.0 are in no phase


def resolved(raw) -> object:
    schedule, _ = resolve_schedule(load_schedule(raw), NAMES)
    return schedule


def lr_scheduler_cfg(class_path: str, init_args: dict | None = None, **extra) -> dict:
    return {"lr_scheduler_init": {"class_path": class_path, "init_args": init_args or {}}, **extra}


def write(tmp_path, text: str, name: str = "schedule.yaml"):
    path = tmp_path / name
    path.write_text(text)
    return path


class TrainingBatchCounter(Callback):
    """Counts training batches, to prove a failure happened before any training step."""

    def __init__(self) -> None:
        self.batches = 0

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        self.batches += 1


def fit_fails_before_training(tmp_path, model, callbacks, **trainer_kwargs) -> ScheduleError:
    """Run ``trainer.fit`` expecting a ScheduleError; check nothing trained, nothing was saved, no weight moved."""
    before = {key: value.clone() for key, value in model.state_dict().items()}
    counter = TrainingBatchCounter()
    fit_trainer = trainer(tmp_path, [*callbacks, counter], max_epochs=2, **trainer_kwargs)
    with pytest.raises(ScheduleError) as err:
        fit_trainer.fit(model)
    assert counter.batches == 0
    assert not list(tmp_path.rglob("*.ckpt"))
    assert not list(tmp_path.rglob("*_ft_schedule.yaml"))
    after = model.state_dict()
    assert all(torch.equal(before[key], after[key]) for key in before)
    return err.value


# ---------------------------------------------------------------------------------------------- parameter resolution
def test_a_name_matching_no_parameter_is_rejected_with_the_closest_names():
    """(tests/schedule/test_suggest.py specifies the suggestions.)"""
    with pytest.raises(
        ScheduleError, match=r"matches no parameter of the model; did you mean 'net\.4\.weight'\?"
    ) as err:
        resolved({0: {"params": ["net.6.*"]}, 1: {"params": ["net.4.wieght"]}})
    assert (err.value.source, err.value.phase, err.value.key, err.value.value) == (
        "<dict>",
        1,
        "params",
        "net.4.wieght",
    )
    assert "'net.4.weight'" in str(err.value)
    assert str(err.value).startswith("[<dict>, phase 1, key 'params'] ")
    assert str(err.value).endswith("(got 'net.4.wieght')")


def test_an_invalid_regular_expression_is_rejected_where_it_is_written():
    with pytest.raises(ScheduleError, match=r"not a parameter name, and not a valid regular expression") as err:
        resolved({0: {"params": ["net.6.*"]}, 1: {"params": ["net.4.weight", "net.(2"]}})
    assert (err.value.phase, err.value.key, err.value.value) == (1, "params", "net.(2")
    assert "(got 'net.(2')" in str(err.value)


def test_a_parameter_scheduled_in_two_phases_names_both_phases():
    raw = {0: {"params": ["net.6.*"]}, 1: {"params": ["net.4.*"]}, 2: {"params": ["net.2.*", "net.6.bias"]}}
    with pytest.raises(ScheduleError, match=r"parameter 'net\.6\.bias' is already scheduled in phase 0") as err:
        resolved(raw)
    assert (err.value.phase, err.value.key, err.value.value) == (2, "params", "net.6.bias")
    assert "phase 2" in str(err.value)


def test_parameters_no_phase_thaws_are_reported_by_resolution():
    _, never_thawed = resolve_schedule(load_schedule(HEAD_AND_NET4), NAMES)
    assert never_thawed == ["net.0.weight", "net.0.bias", "net.2.weight", "net.2.bias"]


def test_fit_warns_listing_the_parameters_no_phase_thaws(tmp_path):
    scheduler = FinetuningScheduler(HEAD_AND_NET4, restore_best=False)
    with pytest.warns(
        UserWarning,
        match=r"4 parameters are in no phase and stay frozen: net\.0\.weight, net\.0\.bias, "
        r"net\.2\.weight, net\.2\.bias",
    ):
        trainer(tmp_path, [scheduler], max_epochs=1).fit(TinyModule())


# ------------------------------------------------------------------------------------------------------ phase keys
@pytest.mark.parametrize(
    ("raw", "missing"),
    [
        ({0: {"params": ["a"]}, 2: {"params": ["b"]}}, [1]),
        ({1: {"params": ["a"]}, 2: {"params": ["b"]}}, [0]),
        ({2: {"params": ["a"]}, 3: {"params": ["b"]}}, [0, 1]),
    ],
)
def test_phase_keys_must_be_contiguous_from_zero(raw, missing):
    with pytest.raises(ScheduleError, match=re.escape(f"phase indices must be contiguous from 0; missing {missing}")):
        load_schedule(raw)


def test_a_non_contiguous_schedule_lists_every_missing_phase_up_to_the_last():
    raw = {0: {"params": ["a"]}, 1: {"params": ["b"]}, 3: {"params": ["c"]}, 5: {"params": ["d"]}}
    with pytest.raises(ScheduleError, match=re.escape("missing [2, 4]")):
        load_schedule(raw)


@pytest.mark.parametrize("bad_key", ["a", 1.5, True, "1.0", "-1"])
def test_phase_keys_must_be_integers(bad_key):
    with pytest.raises(ScheduleError, match=r"phase keys must be integers") as err:
        load_schedule({0: {"params": ["a"]}, bad_key: {"params": ["b"]}})
    assert err.value.value == bad_key
    assert f"(got {bad_key!r})" in str(err.value)


def test_phase_keys_must_not_be_negative():
    with pytest.raises(ScheduleError, match=r"phase keys must be >= 0 \(got -1\)"):
        load_schedule({0: {"params": ["a"]}, -1: {"params": ["b"]}})


def test_the_same_phase_given_as_integer_and_string_is_rejected():
    with pytest.raises(ScheduleError, match=r"phase index given twice") as err:
        load_schedule({0: {"params": ["a"]}, "0": {"params": ["b"]}})
    assert err.value.phase == 0


def test_an_unknown_phase_key_suggests_the_intended_one():
    with pytest.raises(ScheduleError, match=r"unknown key; did you mean 'max_transition_epoch'\?") as err:
        load_schedule({0: {"params": ["a"], "max_transition_epochs": 3}, 1: {"params": ["b"]}})
    assert (err.value.phase, err.value.key) == (0, "max_transition_epochs")
    assert str(err.value).startswith("[<dict>, phase 0, key 'max_transition_epochs'] ")


def test_an_unknown_nested_key_is_reported_with_its_full_path():
    raw = two_phases(new_lr_scheduler={**STEP_LR, "pl_lrs_cfg": {"intervall": "step"}})
    with pytest.raises(ScheduleError, match=r"did you mean 'interval'") as err:
        load_schedule(raw)
    assert (err.value.phase, err.value.key) == (1, "new_lr_scheduler.pl_lrs_cfg.intervall")


@pytest.mark.parametrize("bad_epoch", [-2, 1.5, "3", True])
def test_max_transition_epoch_must_be_an_integer_of_at_least_minus_one(bad_epoch):
    with pytest.raises(ScheduleError, match=r"must be an integer >= -1") as err:
        load_schedule({0: {"params": ["a"], "max_transition_epoch": bad_epoch}, 1: {"params": ["b"]}})
    assert (err.value.phase, err.value.key, err.value.value) == (0, "max_transition_epoch", bad_epoch)


# ----------------------------------------------------------------------------------------------------- YAML files
def test_a_duplicate_yaml_key_inside_a_phase_is_reported_with_file_and_line(tmp_path):
    path = write(
        tmp_path,
        "0:\n  params: [net.6.weight]\n1:\n  params: [net.4.weight]\n  lr: 1.0e-3\n  lr: 2.0e-3\n",
    )
    with pytest.raises(ScheduleError, match=r"duplicate key 'lr' \(first defined at line 5\)") as err:
        load_schedule(path)
    assert (err.value.source, err.value.line) == (str(path), 6)
    assert str(err.value).startswith(f"[{path}:6] ")


def test_a_duplicate_phase_in_a_yaml_file_is_reported_with_file_and_line(tmp_path):
    path = write(tmp_path, "0:\n  params: [a]\n1:\n  params: [b]\n1:\n  params: [c]\n")
    with pytest.raises(ScheduleError, match=r"duplicate key 1 \(first defined at line 3\)") as err:
        load_schedule(str(path))
    assert (err.value.source, err.value.line) == (str(path), 5)


def test_a_yaml_syntax_error_is_reported_with_file_and_line(tmp_path):
    path = write(tmp_path, "0:\n  params: [net.6.weight]\n1:\n  params: [net.4.weight\n2:\n  params: [net.2.weight]\n")
    with pytest.raises(ScheduleError, match=r"invalid YAML") as err:
        load_schedule(path)
    assert err.value.source == str(path)
    assert err.value.line == 5  # the parser notices the unclosed list where the next phase starts
    assert str(err.value).startswith(f"[{path}:5] invalid YAML: ")


def test_a_schedule_file_that_does_not_exist_is_reported_by_path(tmp_path):
    missing = tmp_path / "no_such_schedule.yaml"
    with pytest.raises(ScheduleError, match=r"schedule file does not exist") as err:
        load_schedule(missing)
    assert (err.value.source, err.value.key) == (str(missing), "ft_schedule")
    with pytest.raises(ScheduleError, match=re.escape(f"[{missing}, key 'ft_schedule'] schedule file does not exist")):
        FinetuningScheduler(ft_schedule=str(missing))


def test_an_empty_yaml_file_is_not_a_schedule(tmp_path):
    with pytest.raises(ScheduleError, match=r"a schedule must be a non-empty mapping"):
        load_schedule(write(tmp_path, "# nothing here\n"))


# ----------------------------------------------------------------------------------------------------------- values
@pytest.mark.parametrize("bad_lr", ["abc", 0, -1e-3, True, [1e-3]])
def test_lr_must_be_a_positive_number(bad_lr):
    with pytest.raises(ScheduleError, match=r"must be a positive number") as err:
        load_schedule(two_phases(lr=bad_lr))
    assert (err.value.phase, err.value.key, err.value.value) == (1, "lr", bad_lr)
    assert str(err.value).startswith("[<dict>, phase 1, key 'lr'] ")


@pytest.mark.parametrize("text", ["nan", ".nan", ".NaN"])
def test_an_lr_that_is_not_a_number_is_refused_before_training_naming_the_phase_and_key(tmp_path, text):
    """``.nan`` is YAML's NaN, ``nan`` the string float() reads as NaN: neither is a learning rate. The error comes
    from the callback's constructor, before any Trainer exists."""
    path = write(tmp_path, f"0:\n  params: ['net.6.*']\n1:\n  params: ['net.4.*']\n  lr: {text}\n")
    with pytest.raises(ScheduleError, match=r"must be a positive number") as err:
        FinetuningScheduler(path)
    assert (err.value.source, err.value.phase, err.value.key) == (str(path), 1, "lr")


@pytest.mark.parametrize("nan", [float("nan"), "nan"])
def test_an_init_pg_lrs_entry_that_is_not_a_number_is_refused_naming_the_phase_and_entry(nan):
    with pytest.raises(ScheduleError, match=r"must be a positive number") as err:
        FinetuningScheduler(two_phases(new_lr_scheduler={**STEP_LR, "init_pg_lrs": [1e-3, nan]}))
    assert (err.value.phase, err.value.key) == (1, "new_lr_scheduler.init_pg_lrs[1]")
    assert str(err.value).startswith("[<dict>, phase 1, key 'new_lr_scheduler.init_pg_lrs[1]'] ")


def test_scientific_notation_without_a_dot_is_read_as_a_number(tmp_path):
    """YAML 1.1 reads ``1e-5`` as a string; ftexp takes it as the number the user meant."""
    path = write(
        tmp_path,
        "0:\n"
        "  params: [net.6.weight]\n"
        "1:\n"
        "  params: [net.4.weight]\n"
        "  lr: 1e-5\n"
        "  new_lr_scheduler:\n"
        "    lr_scheduler_init: {class_path: torch.optim.lr_scheduler.StepLR, init_args: {step_size: 1}}\n"
        "    init_pg_lrs: [1e-4, 2E-5]\n",
    )
    phase = load_schedule(path)[1]
    assert phase.lr == 1e-5 and isinstance(phase.lr, float)
    assert phase.new_lr_scheduler.init_pg_lrs == (1e-4, 2e-5)


def test_a_scheduler_that_passes_the_start_up_checks_can_step_with_init_args_written_without_a_dot(tmp_path):
    path = write(
        tmp_path,
        "0:\n"
        "  params: [net.6.weight]\n"
        "1:\n"
        "  params: [net.4.weight]\n"
        "  new_lr_scheduler:\n"
        "    lr_scheduler_init:\n"
        "      class_path: torch.optim.lr_scheduler.CosineAnnealingLR\n"
        "      init_args: {T_max: 4, eta_min: 1e-7}\n",
    )
    schedule = resolved(path)
    try:
        check_phase_directives(schedule, 1, None)
    except ScheduleError as err:  # rejecting it before training is acceptable too
        assert err.key == "new_lr_scheduler.lr_scheduler_init.init_args"
        return
    weights = [torch.zeros(1, requires_grad=True) for _ in range(2)]  # the two groups phase 1 will have
    optimizer = torch.optim.SGD([{"params": [w]} for w in weights], lr=0.1)
    scheduler = build_lr_scheduler(schedule[1].new_lr_scheduler, optimizer).scheduler
    for _ in range(3):
        optimizer.step()
        scheduler.step()


# ------------------------------------------------------------------------------------------ phase-0 reinitialization
@pytest.mark.parametrize(("key", "value"), [("new_lr_scheduler", STEP_LR), ("new_optimizer", SGD)])
def test_phase_zero_cannot_reinitialize_the_optimizer_or_lr_scheduler(key, value):
    raw = {0: {"params": ["net.6.*"], key: value}, 1: {"params": ["net.4.*"]}}
    with pytest.raises(
        ScheduleError, match=r"phase 0 uses the optimizer and LR scheduler from configure_optimizers"
    ) as e:
        load_schedule(raw)
    assert (e.value.phase, e.value.key) == (0, key)
    assert str(e.value).startswith(f"[<dict>, phase 0, key '{key}'] ")


# --------------------------------------------------------------------------------------- optimizer / LR-scheduler
@pytest.mark.parametrize(
    ("directive", "class_path", "error"),
    [
        ("new_lr_scheduler", "torch.optim.no_such_module.StepLR", "ModuleNotFoundError"),
        ("new_lr_scheduler", "torch.optim.lr_scheduler.NoSuchLR", "AttributeError"),
        ("new_optimizer", "no_such_package.optim.Adam", "ModuleNotFoundError"),
        ("new_optimizer", "torch.optim.NoSuchOptimizer", "AttributeError"),
    ],
)
def test_a_class_path_that_cannot_be_imported_is_rejected(directive, class_path, error):
    init = "lr_scheduler_init" if directive == "new_lr_scheduler" else "optimizer_init"
    phase1 = {directive: {init: {"class_path": class_path}}}
    if directive == "new_optimizer":
        phase1["new_lr_scheduler"] = STEP_LR
    with pytest.raises(ScheduleError, match=rf"cannot import class \({error}: ") as err:
        check_phase_directives(resolved(two_phases(**phase1)), 1, None)
    assert (err.value.phase, err.value.key, err.value.value) == (1, f"{directive}.{init}.class_path", class_path)


@pytest.mark.parametrize("class_path", ["torch.optim.SGD", "torch.nn.Linear", "os.path"])
def test_a_class_that_is_not_an_lr_scheduler_is_rejected(class_path):
    with pytest.raises(ScheduleError, match=r"is not a torch LR scheduler class") as err:
        check_phase_directives(resolved(two_phases(new_lr_scheduler=lr_scheduler_cfg(class_path))), 1, None)
    assert (err.value.phase, err.value.key, err.value.value) == (
        1,
        "new_lr_scheduler.lr_scheduler_init.class_path",
        class_path,
    )


def test_a_class_that_is_not_an_optimizer_is_rejected():
    raw = two_phases(
        new_optimizer={"optimizer_init": {"class_path": "torch.optim.lr_scheduler.StepLR"}}, new_lr_scheduler=STEP_LR
    )
    with pytest.raises(ScheduleError, match=r"is not a torch optimizer class") as err:
        check_phase_directives(resolved(raw), 1, None)
    assert (err.value.phase, err.value.key) == (1, "new_optimizer.optimizer_init.class_path")


def test_an_lr_scheduler_outside_the_tested_set_needs_allow_untested():
    spec = lr_scheduler_cfg("torch.optim.lr_scheduler.OneCycleLR", {"max_lr": 0.1, "total_steps": 10})
    schedule = resolved(two_phases(new_lr_scheduler=spec))
    with pytest.raises(ScheduleError, match=r"this LR scheduler is not supported .*allow_untested=True") as err:
        check_phase_directives(schedule, 1, None)
    assert err.value.key == "new_lr_scheduler.lr_scheduler_init.class_path"
    check_phase_directives(schedule, 1, None, allow_untested=True)


def test_init_args_the_lr_scheduler_rejects_are_reported_with_its_error():
    raw = two_phases(new_lr_scheduler=lr_scheduler_cfg("torch.optim.lr_scheduler.StepLR", {"stepsize": 2}))
    with pytest.raises(ScheduleError, match=r"StepLR rejected these arguments \(TypeError: .*stepsize") as err:
        check_phase_directives(resolved(raw), 1, None)
    assert (err.value.phase, err.value.key, err.value.value) == (
        1,
        "new_lr_scheduler.lr_scheduler_init.init_args",
        {"stepsize": 2},
    )


def test_init_args_the_optimizer_rejects_are_reported_with_its_error():
    raw = two_phases(
        new_optimizer={"optimizer_init": {"class_path": "torch.optim.SGD", "init_args": {"momentum": -1.0}}},
        new_lr_scheduler=STEP_LR,
    )
    with pytest.raises(ScheduleError, match=r"SGD rejected these arguments \(ValueError: ") as err:
        check_phase_directives(resolved(raw), 1, None)
    assert (err.value.phase, err.value.key) == (1, "new_optimizer.optimizer_init.init_args")


def test_reduce_lr_on_plateau_needs_the_metric_it_monitors():
    plateau = "torch.optim.lr_scheduler.ReduceLROnPlateau"
    unmonitored = resolved(two_phases(new_lr_scheduler=lr_scheduler_cfg(plateau)))
    with pytest.raises(
        ScheduleError, match=r"ReduceLROnPlateau needs the metric it watches: set pl_lrs_cfg\.monitor"
    ) as e:
        check_phase_directives(unmonitored, 1, None)
    assert (e.value.phase, e.value.key) == (1, "new_lr_scheduler.pl_lrs_cfg.monitor")
    monitored = lr_scheduler_cfg(plateau, pl_lrs_cfg={"monitor": "val_loss"})
    check_phase_directives(resolved(two_phases(new_lr_scheduler=monitored)), 1, None)


def test_reduce_on_plateau_in_pl_lrs_cfg_is_accepted_as_fts_writes_it_and_must_match_the_class():
    plateau = "torch.optim.lr_scheduler.ReduceLROnPlateau"
    fts_style = lr_scheduler_cfg(plateau, pl_lrs_cfg={"monitor": "val_loss", "reduce_on_plateau": True})
    check_phase_directives(resolved(two_phases(new_lr_scheduler=fts_style)), 1, None)
    wrong = {**STEP_LR, "pl_lrs_cfg": {"reduce_on_plateau": True}}
    with pytest.raises(ScheduleError, match=r"says reduce_on_plateau=True for StepLR") as e:
        check_phase_directives(resolved(two_phases(new_lr_scheduler=wrong)), 1, None)
    assert (e.value.phase, e.value.key) == (1, "new_lr_scheduler.pl_lrs_cfg.reduce_on_plateau")
    with pytest.raises(ScheduleError, match="must be true or false"):
        resolved(two_phases(new_lr_scheduler={**STEP_LR, "pl_lrs_cfg": {"reduce_on_plateau": "yes"}}))


@pytest.mark.parametrize("interval", ["hourly", "epochs", 1])
def test_the_lr_scheduler_interval_must_be_epoch_or_step(interval):
    raw = two_phases(new_lr_scheduler={**STEP_LR, "pl_lrs_cfg": {"interval": interval}})
    with pytest.raises(ScheduleError, match=r"must be 'epoch' or 'step'") as err:
        load_schedule(raw)
    assert (err.value.phase, err.value.key, err.value.value) == (1, "new_lr_scheduler.pl_lrs_cfg.interval", interval)
    assert f"(got {interval!r})" in str(err.value)


def test_init_pg_lrs_and_use_current_optimizer_pg_lrs_exclude_each_other():
    spec = {**STEP_LR, "init_pg_lrs": [1e-3, 1e-3], "use_current_optimizer_pg_lrs": True}
    with pytest.raises(ScheduleError, match=r"give either init_pg_lrs or use_current_optimizer_pg_lrs") as err:
        load_schedule(two_phases(new_lr_scheduler=spec))
    assert (err.value.phase, err.value.key) == (1, "new_lr_scheduler")


# ---------------------------------------------------------------------------------------------- constructor checks
@pytest.mark.parametrize(("key", "value"), [("reinit_lr_cfg", STEP_LR), ("reinit_optim_cfg", SGD)])
def test_reinit_configs_are_for_implicit_schedules_only(key, value):
    with pytest.raises(ScheduleError, match=r"applies to implicit schedules only") as err:
        FinetuningScheduler(ft_schedule=two_phases(), **{key: value})
    assert err.value.key == key
    assert str(err.value).startswith(f"[key '{key}'] ")


def test_reinit_lr_cfg_cannot_fix_per_group_lrs():
    with pytest.raises(ScheduleError, match=r"init_pg_lrs cannot be used when the same scheduler is rebuilt") as err:
        FinetuningScheduler(reinit_lr_cfg={**STEP_LR, "init_pg_lrs": [1e-3]})
    assert err.value.key == "reinit_lr_cfg.init_pg_lrs"


def test_a_bad_reinit_lr_cfg_names_the_argument_as_its_source():
    with pytest.raises(ScheduleError, match=r"must be 'epoch' or 'step'") as err:
        FinetuningScheduler(reinit_lr_cfg={**STEP_LR, "pl_lrs_cfg": {"interval": "hourly"}})
    assert (err.value.source, err.value.key) == ("reinit_lr_cfg", "reinit_lr_cfg.pl_lrs_cfg.interval")


# ------------------------------------------------------------------------------------- checks that need a Trainer
def test_epoch_transitions_only_needs_max_transition_epoch_before_the_last_phase(tmp_path):
    raw = {
        0: {"params": ["net.6.*"], "max_transition_epoch": 1},
        1: {"params": ["net.4.*"]},
        2: {"params": ["net.2.*", "net.0.*"]},
    }
    scheduler = FinetuningScheduler(raw, epoch_transitions_only=True)
    err = fit_fails_before_training(tmp_path, TinyModule(), [scheduler])
    assert (err.source, err.phase, err.key) == ("<dict>", 1, "max_transition_epoch")
    assert "epoch_transitions_only=True needs a max_transition_epoch >= 0 in every phase before the last" in str(err)


def test_epoch_transitions_only_does_not_need_max_transition_epoch_in_the_last_phase(tmp_path):
    raw = {0: {"params": ["net.6.*"], "max_transition_epoch": 1}, 1: {"params": ["net.4.*", "net.2.*", "net.0.*"]}}
    scheduler = FinetuningScheduler(raw, epoch_transitions_only=True, restore_best=False)
    trainer(tmp_path, [scheduler], max_epochs=2).fit(TinyModule())
    assert [(t["depth"], t["epoch"]) for t in scheduler.transitions] == [(1, 1)]


def test_fit_warns_about_a_phase_that_ends_at_or_after_max_epochs_and_only_about_it(tmp_path):
    """Phase 1 ends at epoch 2 = max_epochs, so phase 2 never runs; phase 0 ends at 1, below max_epochs."""
    raw = {
        0: {"params": ["net.6.*"], "max_transition_epoch": 1},
        1: {"params": ["net.4.*"], "max_transition_epoch": 2},
        2: {"params": ["net.2.*", "net.0.*"]},
    }
    scheduler = FinetuningScheduler(raw, restore_best=False)
    with pytest.warns(UserWarning) as caught:
        trainer(tmp_path, [scheduler], max_epochs=2).fit(TinyModule())
    late = [str(w.message) for w in caught if "is not below" in str(w.message)]
    assert len(late) == 1, late
    assert re.search(r"phase 1 max_transition_epoch=2 is not below max_epochs=2; later phases may never run", late[0])


def test_restore_best_needs_checkpointing(tmp_path):
    scheduler = FinetuningScheduler(two_phases(), restore_best=True)
    err = fit_fails_before_training(tmp_path, TinyModule(), [scheduler], enable_checkpointing=False)
    assert err.key == "restore_best"
    assert "restore_best=True needs checkpointing" in str(err)


def test_lr_scheduler_init_args_are_checked_before_any_training_step(tmp_path):
    raw = two_phases(new_lr_scheduler=lr_scheduler_cfg("torch.optim.lr_scheduler.StepLR", {"stepsize": 1}))
    err = fit_fails_before_training(tmp_path, TinyModule(), [FinetuningScheduler(raw)])
    assert (err.phase, err.key) == (1, "new_lr_scheduler.lr_scheduler_init.init_args")


def test_a_new_optimizer_alone_is_accepted_when_configure_optimizers_returns_no_scheduler(tmp_path):
    scheduler = FinetuningScheduler(
        {
            0: {"params": ["net.6.*"], "max_transition_epoch": 1},
            1: {"params": ["net.4.*", "net.2.*", "net.0.*"], "new_optimizer": SGD},
        },
        restore_best=False,
    )
    fitted = trainer(tmp_path, [scheduler], max_epochs=2)
    fitted.fit(TinyModule())
    assert scheduler.curr_depth == 1
    assert type(fitted.optimizers[0]) is torch.optim.SGD


# --------------------------------------------------------------------------------------------------- init_pg_lrs
def test_init_pg_lrs_has_one_lr_per_earlier_group_as_in_fts_or_one_per_group_of_the_phase():
    """Without no_decay every phase adds one group: at phase 1 the optimizer has the phase-0 group + 1. FTS's
    length covers the groups that exist before the phase (1); ftexp also takes one lr for every group (2)."""
    for length in (1, 2):
        check_phase_directives(
            resolved(two_phases(new_lr_scheduler={**STEP_LR, "init_pg_lrs": [1e-3] * length})), 1, None
        )
    too_many = two_phases(new_lr_scheduler={**STEP_LR, "init_pg_lrs": [1e-3, 1e-3, 1e-3]})
    with pytest.raises(
        ScheduleError,
        match=r"has 3 learning rates; it needs 1 \(one per group of earlier phases, as "
        r"in FTS; the phase's own groups start at its lr\) or 2 \(every group in this phase\)",
    ) as e:
        check_phase_directives(resolved(too_many), 1, None)
    assert (e.value.phase, e.value.key, e.value.value) == (1, "new_lr_scheduler.init_pg_lrs", [1e-3, 1e-3, 1e-3])


def test_init_pg_lrs_counts_the_two_no_decay_groups_every_phase_adds():
    """With no_decay=["bias"] every phase adds a decay and a no-decay group, even when one is empty (as FTS does):
    phase 3 thaws only a weight yet its init_pg_lrs counts 2 + 2 + 2 groups before it (FTS's length)."""
    raw = {
        0: {"params": ["net.6.*"]},
        1: {"params": ["net.4.*"], "new_lr_scheduler": {**STEP_LR, "init_pg_lrs": [1e-3] * 1}},
        2: {"params": ["net.2.*"], "new_lr_scheduler": {**STEP_LR, "init_pg_lrs": [1e-3] * 5}},
        3: {"params": ["net.0.weight"], "new_lr_scheduler": {**STEP_LR, "init_pg_lrs": [1e-3] * 5}},
    }
    check_phase_directives(resolved(raw), 1, ["bias"])
    raw[2]["new_lr_scheduler"]["init_pg_lrs"] = [1e-3] * 4
    with pytest.raises(ScheduleError, match=r"has 4 learning rates; it needs 3 .* or 5 ") as e:
        check_phase_directives(resolved(raw), 1, ["bias"])
    assert (e.value.phase, e.value.key) == (2, "new_lr_scheduler.init_pg_lrs")


def test_a_wrong_length_init_pg_lrs_fails_fit_before_training_on_a_no_decay_module(tmp_path):
    raw = {
        0: {"params": ["net.6.*"], "max_transition_epoch": 1},
        1: {"params": ["net.4.weight", "net.4.bias"], "new_lr_scheduler": {**STEP_LR, "init_pg_lrs": [1e-3, 1e-3]}},
        2: {"params": ["net.2.*", "net.0.*"]},
    }
    err = fit_fails_before_training(tmp_path, TinyModule(no_decay=["bias"]), [FinetuningScheduler(raw)])
    assert (err.phase, err.key, err.value) == (1, "new_lr_scheduler.init_pg_lrs", [1e-3, 1e-3])
    assert "it needs 1 (one per group of earlier phases" in str(err)
    assert "or 3 (every group in this phase)" in str(err)


def test_an_init_pg_lrs_of_the_simulated_length_trains_through_the_transition(tmp_path):
    raw = {
        0: {"params": ["net.6.*"], "max_transition_epoch": 1},
        1: {
            "params": ["net.4.weight", "net.4.bias"],
            "new_lr_scheduler": {**STEP_LR, "init_pg_lrs": [1e-3, 2e-3, 3e-3]},
        },
        2: {"params": ["net.2.*", "net.0.*"]},
    }
    scheduler = FinetuningScheduler(raw, restore_best=False)
    fitted = trainer(tmp_path, [scheduler], max_epochs=2)
    fitted.fit(TinyModule(no_decay=["bias"]))
    assert [(t["depth"], t["lrs"]) for t in scheduler.transitions] == [(1, [1e-3, 2e-3, 3e-3])]
    assert len(fitted.optimizers[0].param_groups) == 3


# ------------------------------------------------------------------------------------------------- pure helpers
def test_split_no_decay_gives_a_decay_and_a_no_decay_group_even_when_one_is_empty():
    names = ["enc.dense.weight", "enc.dense.bias", "enc.LayerNorm.weight", "enc.LayerNorm.bias"]
    assert split_no_decay(names, ["bias", "LayerNorm.weight"]) == [
        ["enc.dense.weight"],
        ["enc.dense.bias", "enc.LayerNorm.weight", "enc.LayerNorm.bias"],
    ]
    assert split_no_decay(names, None) == [names]
    assert split_no_decay(names, []) == [names]
    assert split_no_decay(["a.bias", "b.bias"], ["bias"]) == [[], ["a.bias", "b.bias"]]
    assert split_no_decay(["a.weight"], ["bias"]) == [["a.weight"], []]
    assert split_no_decay([], ["bias"]) == []


def test_a_name_containing_any_one_of_the_no_decay_fragments_goes_to_the_zero_decay_group():
    """As in the usual HF recipe: a fragment is enough, the name need not contain all of them."""
    no_decay = ["bias", "LayerNorm.weight", "embeddings"]
    names = ["layer.dense.weight", "layer.dense.bias", "layer.LayerNorm.weight", "embeddings.word.weight"]
    assert split_no_decay(names, no_decay) == [
        ["layer.dense.weight"],
        ["layer.dense.bias", "layer.LayerNorm.weight", "embeddings.word.weight"],
    ]


def test_group_counts_start_from_phase_zero_and_add_one_or_two_groups_per_phase():
    schedule = resolved(
        {
            0: {"params": ["net.6.*"]},
            1: {"params": ["net.4.weight", "net.4.bias"]},
            2: {"params": ["net.2.bias"]},
            3: {"params": ["net.2.weight", "net.0.*"]},
        }
    )
    assert group_counts(schedule, 1, None) == [1, 2, 3, 4]
    assert group_counts(schedule, 1, ["bias"]) == [1, 3, 5, 7], "with no_decay every phase adds two groups"
    assert group_counts(schedule, 2, ["bias"]) == [2, 4, 6, 8]


def test_check_phase_directives_accepts_a_schedule_without_directives():
    check_phase_directives(resolved(two_phases()), 1, ["bias"])


def test_check_phase_directives_applies_reinit_lr_cfg_to_every_transition_and_names_it():
    schedule = resolved({0: {"params": ["net.6.*"]}, 1: {"params": ["net.4.*"]}, 2: {"params": ["net.2.*"]}})
    good = parse_lr_scheduler_spec(STEP_LR, "reinit_lr_cfg", None, "reinit_lr_cfg")
    check_phase_directives(schedule, 1, None, reinit_lr=good)
    bad = parse_lr_scheduler_spec(
        lr_scheduler_cfg("torch.optim.lr_scheduler.StepLR", {"stepsize": 1}), "reinit_lr_cfg", None, "reinit_lr_cfg"
    )
    with pytest.raises(ScheduleError, match=r"StepLR rejected these arguments") as err:
        check_phase_directives(schedule, 1, None, reinit_lr=bad)
    assert (err.value.source, err.value.phase, err.value.key) == (
        "reinit_lr_cfg",
        1,
        "reinit_lr_cfg.lr_scheduler_init.init_args",
    )
