"""The task-graph schedule on N cards: toy graphs whose makespan is known by hand."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from jointaug.experiments.schedule import simulate

H = 3600.0


@dataclass(frozen=True)
class T:
    id: str
    est_s: float
    num_gpus: float = 1.0
    deps: tuple[str, ...] = ()
    num_cpus: float = 1.0


def test_a_chain_takes_the_sum_and_is_the_critical_path():
    s = simulate([T("a", 1 * H), T("b", 2 * H, deps=("a",)), T("c", 0.5 * H, deps=("a",))], gpus=1)
    assert s.makespan_s == pytest.approx(3.5 * H)  # one card: a, then b and c one after the other
    s2 = simulate([T("a", 1 * H), T("b", 2 * H, deps=("a",)), T("c", 0.5 * H, deps=("a",))], gpus=2)
    assert s2.makespan_s == pytest.approx(3 * H) and s2.critical_path == ["a", "b"]
    assert "makespan: 3.0 h on 2 x H100" in s2.summary("H100")


def test_independent_tasks_spread_over_cards():
    tasks = [T(f"t{i}", 1 * H) for i in range(4)]
    assert simulate(tasks, gpus=1).makespan_s == pytest.approx(4 * H)
    s = simulate(tasks, gpus=2)
    assert s.makespan_s == pytest.approx(2 * H) and s.busy_share == pytest.approx([1.0, 1.0])
    s = simulate(tasks, gpus=8)
    assert s.makespan_s == pytest.approx(1 * H) and sum(b == 0 for b in s.busy_share) == 4


def test_fractional_tasks_share_a_card_at_the_packing_gain():
    four = [T(f"c{i}", 1 * H, num_gpus=0.25) for i in range(4)]
    # 4 on one card run together, 2x the throughput of one: each takes 4/2 = 2 h
    assert simulate(four, gpus=1, packing_gain=2.0).makespan_s == pytest.approx(2 * H)
    eight = [T(f"c{i}", 1 * H, num_gpus=0.25) for i in range(8)]
    assert simulate(eight, gpus=1, packing_gain=2.0).makespan_s == pytest.approx(4 * H)
    assert simulate(eight, gpus=2, packing_gain=2.0).makespan_s == pytest.approx(2 * H)
    assert simulate(eight, gpus=1, packing_gain=4.0).makespan_s == pytest.approx(2 * H)


def test_a_task_that_does_not_fit_lets_later_ones_start():
    tasks = [T("big", 2 * H), T("half", 1 * H, num_gpus=0.5), T("half2", 1 * H, num_gpus=0.5)]
    s = simulate(tasks, gpus=1, packing_gain=2.0)  # halves: k=2, gain 2 -> 1 h each, together
    assert s.placements["big"].start_s == 0 and s.placements["half"].start_s == pytest.approx(2 * H)
    assert s.makespan_s == pytest.approx(3 * H)
    s = simulate([T("x", 1 * H, deps=("big",)), *tasks], gpus=2, packing_gain=2.0)
    assert s.placements["half"].start_s == 0 and s.placements["x"].start_s == pytest.approx(2 * H)


def test_cpu_tasks_use_the_cpu_pool_and_the_report_ends_last():
    tasks = [
        T("m", 1 * H, num_gpus=0),
        T("g", 1 * H),
        T("report", 0.1 * H, num_gpus=0, deps=("m", "g")),
    ]
    s = simulate(tasks, gpus=1)
    assert s.placements["m"].card is None and s.placements["m"].start_s == 0
    assert s.makespan_s == pytest.approx(1.1 * H) and s.critical_path[-1] == "report"


def test_impossible_requests_are_refused():
    with pytest.raises(ValueError, match="asks for 1 GPU"):
        simulate([T("a", 1.0)], gpus=0)
    with pytest.raises(ValueError, match="unknown task"):
        simulate([T("a", 1.0, deps=("nope",))], gpus=1)


def test_flop_rates_and_calibration_files(tmp_path):
    import json

    from jointaug.config import load_config
    from jointaug.experiments.cards import flop_rates, network_flops, read_calibration

    cfg = load_config("demo")
    f = network_flops(cfg, 30)
    assert (
        f["unet_fwd_bwd"] > 2 * f["unet_fwd"] > 0
        and f["classifier_fwd_bwd"] > 2 * f["classifier_fwd"] > 0
    )
    h100, a100 = flop_rates(cfg, 30, "h100", f), flop_rates(cfg, 30, "A100", f)
    assert a100.classifier_s_per_sample > h100.classifier_s_per_sample > 0
    assert h100.diffusion_step_s == pytest.approx(
        f["unet_fwd_bwd"] * cfg.diffusion.batch_size / 150e12
    )
    guided = cfg.model_copy(
        update={"diffusion": cfg.diffusion.model_copy(update={"guidance_scale": 2.0})}
    )
    assert flop_rates(guided, 30, "h100", f).sample_s_per_image == pytest.approx(
        2 * h100.sample_s_per_image
    )
    with pytest.raises(ValueError, match="unknown card 'tpu'"):
        flop_rates(cfg, 30, "tpu", f)
    path = tmp_path / "cal.json"
    path.write_text(json.dumps({"rates": h100.to_json(), "packing_gain": 2.2}))
    rates, extra = read_calibration(path)
    assert rates == h100 and extra["packing_gain"] == 2.2
    path.write_text("{}")
    with pytest.raises(ValueError, match="not a calibration file"):
        read_calibration(path)


def test_classifier_floor_is_first_evaluation_plus_patience():
    from jointaug.config import load_config
    from jointaug.experiments.makespan import classifier_bounds

    c = load_config("demo").classify.model_copy(
        update={
            "max_samples": 10_000,
            "patience_samples": 2_500,
            "eval_every_samples": 1_000,
            "max_epochs": 0,
            "patience_epochs": 0,
        }
    )
    # 100 train images: an evaluation every 10 epochs = 1,000 samples; the best can be the
    # first evaluation (1,000), then 2,500 more samples, checked at evaluations -> 4,000
    assert classifier_bounds(c, 100) == (4_000, 10_000, 1_000)
    assert classifier_bounds(c.model_copy(update={"max_samples": 3_000}), 100)[0] == 3_000


def test_plan_prints_the_makespan_on_n_cards(tmp_path, tiny_dataset):
    import json

    from typer.testing import CliRunner

    from jointaug.cli import app
    from jointaug.config import load_config
    from jointaug.experiments.cards import flop_rates

    base = [
        "run",
        "--dataset",
        str(tiny_dataset),
        "--out",
        str(tmp_path / "run"),
        "--plan",
        "--methods",
        "baseline",
        "--folds",
        "0",
        "--set",
        "device=cpu",
    ]
    res = CliRunner().invoke(app, [*base, "--gpus", "2", "--card", "h100"])
    assert res.exit_code == 0, res.output
    assert "makespan:" in res.output and "on 2 x H100" in res.output
    assert "estimate for H100 (FLOP model) (nothing timed here)" in res.output
    rates = flop_rates(load_config("demo"), 3, "a100")
    cal = tmp_path / "cal.json"
    cal.write_text(json.dumps({"rates": rates.to_json(), "packing_gain": 3.0, "card": "A100 test"}))
    res = CliRunner().invoke(app, [*base, "--gpus", "1", "--calibration", str(cal)])
    assert res.exit_code == 0, res.output
    assert "on 1 x A100 test" in res.output and "at 3x the throughput" in res.output
