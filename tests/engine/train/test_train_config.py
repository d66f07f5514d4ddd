from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from engine.train.config import ConfigError, TrainConfig, load_config, parse_set_option, to_toml, write_config
from engine.train.tasks import CONFIG_DIR


def test_toml_file_then_overrides(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text('epochs = 12\nlr = 1e-3\n[model]\nbackbone = "resnet18"\n[data]\ninput_size = 256\n')
    config = load_config(path, overrides={"epochs": 2, "model.dropout": 0.3, "device": None})
    assert config.epochs == 2 and config.lr == 1e-3 and config.device == "auto"
    assert config.model == {"backbone": "resnet18", "dropout": 0.3}
    assert config.data["input_size"] == 256


def test_yaml_file(tmp_path: Path) -> None:
    pytest.importorskip("yaml")
    path = tmp_path / "c.yaml"
    path.write_text("epochs: 3\nbatch_size: 4\nmodel:\n  backbone: small2d\n")
    config = load_config(path)
    assert (config.epochs, config.batch_size, config.model["backbone"]) == (3, 4, "small2d")


def test_unknown_key_and_bad_values_are_clear(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text("epoch = 3\n")
    with pytest.raises(ConfigError, match="unknown key.*epoch"):
        load_config(path)
    with pytest.raises(ConfigError, match="epochs"):
        load_config(overrides={"epochs": 0})
    with pytest.raises(ConfigError, match="batch_size"):
        load_config(overrides={"batch_size": "many"})
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "missing.toml")


def test_resolved_config_round_trips(tmp_path: Path) -> None:
    config = load_config(overrides={"epochs": 5, "model.backbone": "tiny2d", "tune": {"space": {"lr": {"low": 1e-4, "high": 1e-2, "log": True}, "model.dropout": [0.0, 0.5]}}})
    path = write_config(config, tmp_path / "config.toml", header="resolved")
    assert TrainConfig.from_dict(tomllib.loads(path.read_text())) == config


def test_set_option_parsing() -> None:
    assert parse_set_option(["lr=1e-3", "model.backbone=resnet18", "amp=false", "data.input_size=[256, 320]"]) == {
        "lr": 1e-3, "model.backbone": "resnet18", "amp": False, "data.input_size": [256, 320]}


@pytest.mark.parametrize("path", sorted(CONFIG_DIR.glob("*.toml")), ids=lambda p: p.name)
def test_shipped_configs_load(path: Path) -> None:
    config = load_config(path)
    assert to_toml(config.to_dict())
