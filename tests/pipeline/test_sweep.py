"""`domainlm sweep`: real trials (training child processes, dev-split evaluation), an Optuna study in SQLite that
resumes after a kill, every trial on record, the best trial written as the vertical's recipe and applied by the
quickstart."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from domainlm.errors import ConfigError
from domainlm.pipeline.sweep import Objective, Sweep, SweepConfig, score

REPO = Path(__file__).resolve().parents[2]
TINY = ["train.max_steps=2", "train.batch_size=2", "data.max_train_rows=16", "data.max_length=128",
        "data.max_eval_rows=4", "eval.every_steps=1", "checkpoint.every_steps=0", "train.compile=off",
        "log.tensorboard=false"]


def _config(tmp_path, trials: int, **extra) -> SweepConfig:
    return SweepConfig.model_validate({
        "train_config": str(REPO / "configs" / "train" / "marine.yaml"), "trials": trials,
        "workdir": str(tmp_path / "sweep"), "recipe": str(tmp_path / "recipes" / "marine.yaml"), "fixed": TINY,
        "space": [{"key": "train.lr", "choices": [1.0e-3, 3.0e-3]}, {"key": "data.mix.1.weight", "low": 0.1,
                                                                     "high": 0.3}],
        "objective": {"format_items": 4, "general_items": 8}, "pruner": {"startup_trials": 5},
        "start_with": [{"train.lr": 3.0e-3, "data.mix.1.weight": 0.2}], **extra})


def test_score_rewards_the_dev_nll_cut_and_charges_drops_beyond_tolerance():
    summary = {"nll_reduction": 0.20, "format_adherence": {"format_dev": {"drop": 5.0, "base": 90, "adapter": 85}},
               "general_noninferiority": {"diff": -1.5}}
    value, parts = score(summary, Objective(format_tolerance=2.0, general_tolerance=1.0, penalty=2.0))
    assert value == pytest.approx(20.0 - 2 * 3.0 - 2 * 0.5)
    assert parts["format_drop"] == 5.0 and parts["general_drop"] == 1.5
    assert score({**summary, "format_adherence": {}, "general_noninferiority": {"diff": 0.4}}, Objective())[0] \
        == pytest.approx(20.0)


def test_a_starting_point_must_name_exactly_the_searched_keys(tmp_path):
    with pytest.raises(ConfigError, match=r"start_with\[0\]: give exactly the searched keys"):
        Sweep(_config(tmp_path, 1, start_with=[{"train.lr": 3.0e-3}]))


def test_a_searched_key_that_the_training_config_lacks_fails_before_any_trial(tmp_path):
    cfg = _config(tmp_path, 1, space=[{"key": "train.learning_rate", "low": 1e-4, "high": 1e-3}])
    with pytest.raises(ConfigError, match="learning_rate"):
        Sweep(cfg)


@pytest.mark.slow
def test_sweep_runs_trials_resumes_and_writes_the_recipe(tmp_path, isolated_home):
    import optuna

    result = Sweep(_config(tmp_path, 1)).run()
    workdir = tmp_path / "sweep"
    rows = [json.loads(line) for line in (workdir / "trials.jsonl").read_text().splitlines()]
    assert [r["state"] for r in rows] == ["COMPLETE"]
    for row in rows:   # every trial on record with its overrides and dev numbers
        assert "train.max_steps=2" in row["overrides"] and row["dev_nll_reduction"] is not None
        assert row["value"] == pytest.approx(score(json.loads(Path(row["report"]).read_text())["summary"],
                                                   Objective(format_items=4, general_items=8))[0])
        report = json.loads(Path(row["report"]).read_text())
        assert set(report["tasks"]) == {"dev_nll", "format_dev", "mmlu_dev"}   # dev items only, never a gate
    assert (workdir / "trials.png").stat().st_size > 5000
    recipe = yaml.safe_load((tmp_path / "recipes" / "marine.yaml").read_text())
    best = max(rows, key=lambda r: r["value"])
    # the recipe is the searched keys only: the sweep's fixed eval cadence and tiny sizes are not a recipe
    assert recipe["overrides"] == [f"train.lr={best['params']['train.lr']}",
                                   f"data.mix.1.weight={best['params']['data.mix.1.weight']}"]
    assert result["best_trial"] == best["number"]
    assert rows[0]["params"] == {"train.lr": 3.0e-3, "data.mix.1.weight": 0.2}   # start_with goes first

    # a kill mid-trial leaves it RUNNING in the study: the next run fails it and runs its parameters again
    study = Sweep(_config(tmp_path, 1)).study()
    cut = study.ask({"train.lr": optuna.distributions.CategoricalDistribution([1.0e-3, 3.0e-3]),
                     "data.mix.1.weight": optuna.distributions.FloatDistribution(0.1, 0.3)})
    resumed = Sweep(_config(tmp_path, 2)).run()   # one more trial wanted: the cut one, re-run
    states = [t.state.name for t in Sweep(_config(tmp_path, 2)).study().trials]
    assert states.count("COMPLETE") == 2 and states[cut.number] == "FAIL"
    rerun = json.loads((workdir / "trials.jsonl").read_text().splitlines()[-1])
    assert rerun["params"] == cut.params and rerun["rerun_of"] == cut.number
    assert resumed["trials"]["complete"] == 2


def test_the_quickstart_applies_a_recipe_after_its_own_overrides(tmp_path):
    from domainlm.pipeline.quickstart import Quickstart, load_pipeline

    recipes = tmp_path / "recipes"
    recipes.mkdir()
    (recipes / "marine.yaml").write_text("vertical: marine\noverrides:\n  - train.lr=0.0031\n  - lora.r=32\n")
    cfg = load_pipeline(REPO / "configs" / "pipeline" / "quickstart.yaml",
                        [f"train.recipes_dir={recipes}", f"workdir={tmp_path / 'qs'}"])
    pipeline = Quickstart(cfg, root=REPO)
    marine, _ = pipeline._train_config("marine")
    assert marine.train.lr == 0.0031 and marine.lora.r == 32 and marine.train.max_steps == 64
    medical, _ = pipeline._train_config("medical")   # no recipe: the quickstart's own settings
    assert medical.train.lr == 2.0e-3 and medical.lora.r == 16
    (recipes / "petrochem.yaml").write_text("overrides: train.lr=1\n")
    with pytest.raises(ConfigError, match="a list of key=value strings"):
        pipeline._train_config("petrochem")
