"""One row per scenario: counts, mean ± std, epochs, phases, time and compute (ftexp/sweeps/table.py)."""

from __future__ import annotations

import math

import pytest

from ftexp.record import RunRecord
from ftexp.sweeps.runs import load_jobs
from ftexp.sweeps.scenarios import group_scenarios
from ftexp.sweeps.table import (
    compute_hours,
    job_rows,
    legend,
    markdown_table,
    phases_reached,
    scenario_rows,
    stat,
    unfinished_notes,
)
from tests.sweeps.fake_sweeps import result, write_job


def rows_of(sweep_dir):
    scenarios = group_scenarios(load_jobs(sweep_dir))
    return {row["scenario"]: row for row in scenario_rows(scenarios, job_rows(scenarios, sweep_dir))}


def test_mean_and_sample_std_over_the_completed_seeds(fake_sweep):
    nofts = rows_of(fake_sweep)["schedule=nofts"]
    assert (nofts["jobs"], nofts["completed"], nofts["seeds_completed"]) == (2, 2, "1 2")
    assert nofts["best_val_acc_mean"] == pytest.approx(0.61)
    assert nofts["best_val_acc_std"] == pytest.approx(math.sqrt(2 * 0.01**2))  # n - 1 in the denominator
    assert nofts["best_val_loss_mean"] == pytest.approx(0.65)


def test_failed_and_running_jobs_are_counted_but_not_averaged(fake_sweep):
    rows = rows_of(fake_sweep)
    explicit, implicit = rows["schedule=explicit"], rows["schedule=implicit"]
    assert (explicit["jobs"], explicit["completed"], explicit["failed"]) == (2, 1, 1)
    assert explicit["best_val_acc_mean"] == pytest.approx(0.80)  # not the failed seed's 0.10
    assert (implicit["jobs"], implicit["completed"], implicit["running_or_missing"]) == (2, 1, 1)


def test_one_completed_seed_has_no_std():
    assert stat([0.8]).std is None
    assert stat([0.8, None, float("nan")]).n == 1
    assert stat([None]) is None


def test_the_markdown_row_shows_mean_plus_minus_std_and_a_dash_for_one_seed(fake_sweep):
    table = markdown_table(list(rows_of(fake_sweep).values()))
    lines = table.splitlines()
    assert lines[0] == (
        "| scenario | completed | best val acc | best val loss | epochs | phases reached | trained weights "
        "| wall (min) | allotted | CPU time used | not completed |"
    )
    assert lines[2].startswith("| schedule=nofts | 2/2 | 0.610 ± 0.014 | 0.6500 ± 0.0141 | 6.0 | 1, 1 of 1 | ? | 1.0 |")
    assert lines[3].startswith("| schedule=implicit | 1/2 | 0.700 ± — | 0.5500 ± — |")
    assert lines[3].endswith("| 1 running/missing |")
    assert lines[4].startswith("| schedule=explicit | 1/2 | 0.800 ± — |")
    assert lines[4].endswith("| 1 failed |")


def test_test_columns_appear_when_jobs_were_tested(tmp_path):
    for seed, acc in ((1, 0.7), (2, 0.9)):
        payload = result("nofts", seed, test_acc=acc, test_loss=0.5)
        write_job(tmp_path, f"{seed}", ["schedule=nofts", f"seed={seed}"], payload, num=seed)
    [row] = rows_of(tmp_path).values()
    assert (row["test_acc_mean"], row["test_acc_std"]) == (pytest.approx(0.8), pytest.approx(math.sqrt(0.02)))
    header, _, line = markdown_table([row]).splitlines()
    assert "| test acc | test loss |" in header
    assert "| 0.800 ± 0.141 | 0.5000 ± 0.0000 |" in line


def test_trained_weights_are_those_of_the_last_phase_reached_with_their_share_of_the_model(tmp_path):
    per_phase = {"0": 4_226, "1": 8_386, "2": 41_858}
    for seed, reached in ((1, 1), (2, 2)):  # seed 1 stopped in phase 1, seed 2 reached phase 2
        phases = [{"depth": d, "start_epoch": d} for d in range(reached + 1)]
        payload = result("lora_then_thaw", seed, trainable_params_per_phase=per_phase, total_params=82_628)
        payload.update(phases_run=phases, reached_depth=reached, final_depth=2)
        write_job(tmp_path, f"{seed}", ["schedule=lora_then_thaw", f"seed={seed}"], payload, num=seed)
    [row] = rows_of(tmp_path).values()

    assert row["trainable_weights_mean"] == pytest.approx((8_386 + 41_858) / 2)
    assert "| 2, 3 of 3 | 25.1k (30 %) |" in markdown_table([row])


def test_jobs_not_completed_are_listed_with_their_error(fake_sweep):
    notes = unfinished_notes(group_scenarios(load_jobs(fake_sweep)), fake_sweep)
    assert notes == [
        "`3_implicit` (schedule=implicit, seed 2): running/missing",
        "`5_explicit` (schedule=explicit, seed 2): failed: RuntimeError: CUDA out of memory",
    ]


def test_requeued_jobs_and_jobs_completed_over_several_attempts_are_listed(tmp_path):
    attempt = {"started_at": "2026-11-23T10:00:00", "start_epoch": 0, "end_epoch": 3, "wall_time_s": 60.0}
    requeued = result(status="requeued", attempts=[{**attempt, "status": "requeued"}])
    resumed = result(seed=2, attempts=[{**attempt, "status": "requeued"}, {**attempt, "status": "completed"}])
    write_job(tmp_path, "0", ["schedule=explicit", "seed=1"], requeued, num=0)
    write_job(tmp_path, "1", ["schedule=explicit", "seed=2"], resumed, num=1)
    scenarios = group_scenarios(load_jobs(tmp_path))
    assert unfinished_notes(scenarios, tmp_path) == [
        "`0` (schedule=explicit, seed 1): requeued",
        "`1` (schedule=explicit, seed 2): completed in 2 attempts",
    ]
    [row] = scenario_rows(scenarios, job_rows(scenarios, tmp_path))
    assert (row["completed"], row["requeued"]) == (1, 1)
    assert [r["attempts"] for r in job_rows(scenarios, tmp_path)] == [1, 2]


def test_allotted_gpu_hours_are_wall_time_times_devices_and_cpu_hours_wall_time_times_threads_times_processes(
    tmp_path,
):
    gpu = {"accelerator": "gpu", "devices": 4, "num_nodes": 2, "cpu_threads": 8, "cuda_visible_devices": "0,1"}
    cpu = {"accelerator": "cpu", "devices": 2, "num_nodes": 1, "cpu_threads": 3, "cuda_visible_devices": None}
    write_job(tmp_path, "0", ["schedule=nofts", "seed=1"], result(wall_time_s=5400, hardware=gpu), num=0)
    write_job(
        tmp_path, "1", ["schedule=nofts", "seed=2"], result(wall_time_s=1800, hardware=gpu, status="failed"), num=1
    )
    write_job(tmp_path, "2", ["schedule=nofts", "seed=3"], num=2)  # running: nothing known yet
    write_job(tmp_path, "3", ["schedule=explicit", "seed=1"], result(wall_time_s=600, hardware=cpu), num=3)
    assert compute_hours(5400, gpu) == {"allotted_gpu_hours": 6.0, "allotted_cpu_hours": None}
    assert compute_hours(600, cpu) == {"allotted_gpu_hours": None, "allotted_cpu_hours": pytest.approx(1.0)}
    assert compute_hours(None, gpu) == {"allotted_gpu_hours": None, "allotted_cpu_hours": None}
    rows = rows_of(tmp_path)
    assert rows["schedule=nofts"]["allotted_gpu_hours"] == 8.0  # the failed job's 2 GPU-hours count too
    assert rows["schedule=nofts"]["allotted_cpu_hours"] is None
    assert rows["schedule=nofts"]["wall_time_min_mean"] == 90.0  # the completed job only
    assert "| 8 GPU-h |" in markdown_table([rows["schedule=nofts"]])
    assert "| 1 CPU-h |" in markdown_table([rows["schedule=explicit"]])


def test_the_cpu_time_the_jobs_used_is_shown_beside_the_cpu_hours_they_were_allotted(tmp_path):
    cpu = {"accelerator": "cpu", "devices": 1, "num_nodes": 1, "cpu_threads": 4}
    for seed, used in ((1, 1800.0), (2, 3600.0)):  # 1 h of wall time on 4 threads: 4 CPU-h allotted, each
        payload = result(seed=seed, wall_time_s=3600, hardware=cpu, cpu_time_s=used, status="failed" * (seed == 2))
        write_job(tmp_path, str(seed), ["schedule=explicit", f"seed={seed}"], payload, num=seed)
    [row] = rows_of(tmp_path).values()
    assert (row["allotted_cpu_hours"], row["cpu_time_used_hours"], row["cpu_time_used_n"]) == (8.0, 1.5, 2)
    assert "| 8 CPU-h | 1.5 CPU-h |" in markdown_table([row])
    assert [r["cpu_time_s"] for r in job_rows(group_scenarios(load_jobs(tmp_path)), tmp_path)] == [1800.0, 3600.0]
    assert "CPU time used = the user + system CPU time the jobs' processes recorded" in legend(
        group_scenarios(load_jobs(tmp_path))
    )


def test_cpu_time_used_is_blank_for_files_written_before_it_was_recorded_and_says_when_it_covers_fewer_jobs(
    tmp_path,
):
    write_job(tmp_path, "1", ["schedule=explicit", "seed=1"], result(seed=1), num=1)
    [row] = rows_of(tmp_path).values()
    assert (row["cpu_time_used_hours"], row["cpu_time_used_n"]) == (None, 0)
    assert markdown_table([row]).splitlines()[2].endswith("| n/a | n/a |  |")
    write_job(tmp_path, "2", ["schedule=explicit", "seed=2"], result(seed=2, cpu_time_s=36.0), num=2)
    write_job(tmp_path, "3", ["schedule=explicit", "seed=3"], num=3)  # still running: wrote no result.json yet
    [row] = rows_of(tmp_path).values()
    assert "| 0.01 CPU-h (1 of 2 jobs) |" in markdown_table([row])


def test_phases_reached_from_reached_depth_or_without_a_schedule_the_one_phase_run():
    assert phases_reached(RunRecord.from_dict(result(reached_depth=2, final_depth=3))) == 3
    # no scheduler: phases_run holds the one phase, no reached_depth
    assert phases_reached(RunRecord.from_dict(result("nofts"))) == 1
    assert phases_reached(RunRecord()) is None


def test_phases_reached_are_shown_seed_by_seed_so_that_a_seed_that_never_left_phase_0_shows(tmp_path):
    for seed, depth in ((3, 4), (1, 0), (2, 2)):
        payload = result("implicit", seed, reached_depth=depth, final_depth=4)
        write_job(tmp_path, str(seed), ["schedule=implicit", f"seed={seed}"], payload, num=seed)
    write_job(
        tmp_path,
        "4",
        ["schedule=implicit", "seed=4"],
        result("implicit", 4, "failed", reached_depth=1, final_depth=4),
        num=4,
    )
    [row] = rows_of(tmp_path).values()
    assert (row["seeds_completed"], row["phases_reached_per_seed"]) == ("1 2 3", "1 3 5")  # in seed order
    assert row["phases_reached_mean"] == 3.0
    assert "| 1, 3, 5 of 5 |" in markdown_table([row])
    assert "Phases reached: each completed job's, in seed order (of the schedule's total)" in legend(
        group_scenarios(load_jobs(tmp_path))
    )


def test_with_many_seeds_phases_reached_are_a_range_and_a_median(tmp_path):
    for seed in range(1, 8):
        payload = result("implicit", seed, reached_depth=min(seed, 4), final_depth=4)
        write_job(tmp_path, str(seed), ["schedule=implicit", f"seed={seed}"], payload, num=seed)
    [row] = rows_of(tmp_path).values()
    assert row["phases_reached_per_seed"] == "2 3 4 5 5 5 5"
    assert "| 2-5 of 5, median 5 |" in markdown_table([row])


def test_an_old_result_without_the_new_fields_still_makes_a_row(tmp_path):
    old = result("explicit", 1, reached_depth=1, final_depth=2, test_acc=0.6, test_loss=0.6)
    for field in ("overrides", "sweep", "hardware", "attempts", "history", "best"):
        old.pop(field, None)
    write_job(tmp_path, "old", overrides=None, payload=old)
    [row] = rows_of(tmp_path).values()
    assert (row["scenario"], row["completed"], row["test_acc_mean"]) == ("explicit", 1, 0.6)
    assert (row["best_val_acc_mean"], row["phases_reached_mean"], row["phases_total"]) == (None, 2.0, 3)
    assert (row["allotted_gpu_hours"], row["allotted_cpu_hours"], row["cpu_time_used_hours"]) == (None, None, None)
    assert "| n/a | n/a |" in markdown_table([row])


def test_the_per_job_rows_keep_every_job_with_its_scenario_label(fake_sweep):
    rows = job_rows(group_scenarios(load_jobs(fake_sweep)), fake_sweep)
    assert [(r["job"], r["scenario"], r["seed"], r["status"]) for r in rows] == [
        ("0_nofts", "schedule=nofts", 1, "completed"),
        ("1_nofts", "schedule=nofts", 2, "completed"),
        ("2_implicit", "schedule=implicit", 1, "completed"),
        ("3_implicit", "schedule=implicit", 2, "running/missing"),
        ("4_explicit", "schedule=explicit", 1, "completed"),
        ("5_explicit", "schedule=explicit", 2, "failed"),
    ]
    assert rows[5]["error"] == "RuntimeError: CUDA out of memory"
    assert rows[0]["overrides"] == "+sweep=compare_schedules schedule=nofts seed=1"


def test_a_status_outside_the_known_ones_is_counted_as_not_completed(tmp_path):
    no_status = result(seed=2)
    del no_status["status"]
    write_job(tmp_path, "0", ["schedule=explicit", "seed=1"], result(seed=1), num=0)
    write_job(tmp_path, "1", ["schedule=explicit", "seed=2"], no_status, num=1)
    write_job(tmp_path, "2", ["schedule=explicit", "seed=3"], result(seed=3, status="failed"), num=2)
    [row] = rows_of(tmp_path).values()
    assert (row["jobs"], row["completed"], row["failed"]) == (3, 1, 1)
    assert row["not_completed"] == "1 failed, 1 unknown"
    line = markdown_table([row]).splitlines()[2]
    assert line.startswith("| schedule=explicit | 1/3 |")
    assert line.endswith("| 1 failed, 1 unknown |")


def test_a_mean_over_fewer_values_than_completed_jobs_says_how_many(tmp_path):
    for seed, acc in ((1, 0.5), (2, float("nan")), (3, 0.7)):
        write_job(tmp_path, str(seed), ["schedule=explicit", f"seed={seed}"], result(seed=seed, val_acc=acc), num=seed)
    [row] = rows_of(tmp_path).values()
    assert (row["completed"], row["best_val_acc_n"], row["best_val_loss_n"]) == (3, 2, 3)
    assert row["best_val_acc_mean"] == pytest.approx(0.6)
    line = markdown_table([row]).splitlines()[2]
    assert "| 3/3 | 0.600 ± 0.141 (n=2) | 0.7000 ± 0.0000 |" in line


def test_a_single_value_among_several_completed_jobs_is_not_shown_as_one_completed_job(tmp_path):
    write_job(tmp_path, "1", ["schedule=explicit", "seed=1"], result(seed=1, val_acc=0.5), num=1)
    write_job(tmp_path, "2", ["schedule=explicit", "seed=2"], result(seed=2, best={"monitor": "val_loss"}), num=2)
    [row] = rows_of(tmp_path).values()
    assert "| 2/2 | 0.500 ± — (n=1) | 0.7000 ± — (n=1) |" in markdown_table([row])
    scenarios = group_scenarios(load_jobs(tmp_path))
    assert "± —: a single value; (n=k): only k of the completed jobs have the metric" in legend(scenarios)


def test_scenario_rows_refuse_job_rows_of_another_sweep(fake_sweep, tmp_path):
    write_job(tmp_path, "0", ["schedule=nofts", "seed=1"], result("nofts"), num=0)
    other = job_rows(group_scenarios(load_jobs(tmp_path)), tmp_path)
    with pytest.raises(ValueError, match="pass job_rows"):
        scenario_rows(group_scenarios(load_jobs(fake_sweep)), other)


def test_each_scenario_shows_its_recipe_in_a_column_of_its_own(tmp_path):
    ulmfit = "ulmfit(lr=0.001, factor=0.384615); SlantedTriangularLR(total_steps=auto, cut_frac=0.1, ratio=32)"
    for seed in (1, 2):
        write_job(tmp_path, f"u{seed}", ["schedule=ulmfit", f"seed={seed}"], result("ulmfit", seed, recipe=ulmfit))
        write_job(tmp_path, f"n{seed}", ["schedule=nofts", f"seed={seed}"], result("nofts", seed), num=2 + seed)
    rows = rows_of(tmp_path)

    assert (rows["schedule=ulmfit"]["recipe"], rows["schedule=nofts"]["recipe"]) == (ulmfit, None)
    header, _, *lines = markdown_table(list(rows.values())).splitlines()
    assert header.startswith("| scenario | recipe | completed |")
    assert f"| schedule=ulmfit | {ulmfit} | 2/2 |" in "\n".join(lines)
    assert "| schedule=nofts |  | 2/2 |" in "\n".join(lines)
