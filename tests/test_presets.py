"""``--preset``: named recipes as data, under the values a user names, recorded in config.json."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from npdpsnn.cli.main import main
from npdpsnn.errors import UserError
from npdpsnn.sweep import plan_runs
from npdpsnn.sweep.experiment import parse_experiment
from npdpsnn.training.config import DATASET_DEFAULTS, ConfigError, TrainConfig
from npdpsnn.training.presets import PAPER_FIELDS, RECIPES, apply_preset, preset_values

SMALL = ["--net", "4C5S2-P2S2-16-10", "-T", "2", "--limit-train", "300", "--quiet"]


@pytest.mark.parametrize("dataset", list(DATASET_DEFAULTS))
def test_paper_preset_is_the_papers_settings_written_out(dataset):
    values = preset_values("paper", dataset)
    assert set(values) == set(PAPER_FIELDS)
    # the DPSNN paper, section 4: SGD lr 0.25, no momentum, IF, gate, T = 5, V_th = 0.5, Poisson batches
    assert (values["optim.lr"], values["optim.momentum"], values["optim.ema"]) == (0.25, 0.0, None)
    assert values["optim.init_gain"] == 1.0  # PyTorch's default initialisation
    assert (values["model.neuron"], values["model.surrogate"], values["model.T"], values["model.threshold"]) == \
        ("if", "gate", 5, 0.5)
    assert values["dp.sampling"] == "poisson" and values["dp.clipping"] == "flat"
    for path, default in DATASET_DEFAULTS[dataset].items():  # batch, epochs, R, network of the dataset
        assert values[path] == default
    # a configuration built from the preset alone is the library's default one
    cfg = TrainConfig.from_values(dataset, {**values, "dp.sigma": 1.0})
    plain = TrainConfig.from_values(dataset, {**DATASET_DEFAULTS[dataset], "dp.sigma": 1.0})
    assert cfg == plain


def test_preset_values_sit_under_the_values_given():
    out = apply_preset({"preset": "tuned", "optim.epochs": 3, "optim.lr": 0.25}, "mnist", given={"optim.epochs"})
    assert out["optim.epochs"] == 3  # named: it wins
    assert out["optim.lr"] == 0.1 and out["optim.momentum"] == 0.9 and out["optim.batch_size"] == 1000
    assert apply_preset({"optim.lr": 0.3}, "mnist", set()) == {"optim.lr": 0.3}
    # presets never set the privacy level
    assert not any(k.startswith("dp.") and k not in PAPER_FIELDS for name in RECIPES
                   for ds in RECIPES[name] for k in preset_values(name, ds))


def test_unknown_presets_and_datasets_without_a_recipe_are_refused():
    with pytest.raises(UserError, match="unknown preset"):
        preset_values("fast", "mnist")
    with pytest.raises(UserError, match="no recipe for yaleb"):
        preset_values("tuned", "yaleb")
    with pytest.raises(ConfigError, match="preset"):
        TrainConfig.from_dict({"dataset": "mnist", "dp": {"sigma": 1.0}, "preset": "fast"})
    cfg = TrainConfig.from_dict({"dataset": "mnist", "dp": {"sigma": 1.0}})  # records written before presets
    assert cfg.preset is None and TrainConfig.from_dict(cfg.to_dict()) == cfg


def test_cli_preset_with_an_explicit_override_is_recorded(tmp_path, shared_data_dir):
    out = tmp_path / "r"
    r = CliRunner().invoke(main, ["train", "mnist", "--sigma", "1", "--preset", "tuned", "--epochs", "1",
                                  "--batch-size", "100", *SMALL, "--out", str(out)])
    assert r.exit_code == 0, r.output
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["preset"] == "tuned"
    assert (cfg["optim"]["lr"], cfg["optim"]["momentum"], cfg["optim"]["ema"]) == (0.1, 0.9, 0.995)
    assert (cfg["optim"]["epochs"], cfg["optim"]["batch_size"], cfg["run"]["physical_batch"]) == (1, 100, 200)
    assert (out / "model_ema.h5").is_file()
    r = CliRunner().invoke(main, ["train", "yaleb", "--no-dp", "--preset", "tuned", "--out", str(tmp_path / "y")])
    assert r.exit_code != 0 and "no recipe for yaleb" in r.output and len(r.output.strip().splitlines()) == 1


def test_sweep_runs_take_a_preset_under_their_own_values(tmp_path):
    exp = parse_experiment("""
[experiment]
name = "recipes"
[base]
dataset = "mnist"
"dp.sigma" = 1.0
"optim.epochs" = 2
[grid]
preset = ["paper", "tuned"]
""", "recipes.toml")
    paper, tuned = (r.config for r in plan_runs(exp))
    assert (paper.preset, paper.optim.lr, paper.optim.batch_size, paper.optim.epochs) == ("paper", 0.25, 250, 2)
    assert (tuned.preset, tuned.optim.lr, tuned.optim.batch_size, tuned.optim.epochs) == ("tuned", 0.1, 1000, 2)
    assert tuned.optim.momentum == 0.9 and tuned.run.physical_batch == 2000
