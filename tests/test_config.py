"""Config loader: YAML + overrides → typed objects; every error names file, line and key."""

from __future__ import annotations

import pytest

from domainlm.config import Strict, load_config
from domainlm.errors import ConfigError


class Lora(Strict):
    r: int = 16
    targets: list[str] = ["q_proj", "v_proj"]


class Demo(Strict):
    name: str
    lr: float = 1e-4
    lora: Lora = Lora()


def write(tmp_path, text):
    path = tmp_path / "c.yaml"
    path.write_text(text)
    return path


def test_loads_and_types(tmp_path):
    cfg = load_config(write(tmp_path, "name: medical\nlora:\n  r: 8\n"), Demo)
    assert cfg.name == "medical" and cfg.lora.r == 8 and cfg.lr == 1e-4


def test_overrides_are_typed(tmp_path):
    cfg = load_config(write(tmp_path, "name: a\n"), Demo, ["lora.r=32", "lr=3e-4", "lora.targets=[q_proj,o_proj]"])
    assert cfg.lora.r == 32 and cfg.lr == 3e-4 and cfg.lora.targets == ["q_proj", "o_proj"]


def test_unknown_key_names_file_line_and_key(tmp_path):
    path = write(tmp_path, "name: a\nlora:\n  r: 8\n  rank: 4\n")
    with pytest.raises(ConfigError) as err:
        load_config(path, Demo)
    assert f"{path}:4: lora.rank: unknown key" in str(err.value)


def test_wrong_type_names_line(tmp_path):
    path = write(tmp_path, "name: a\nlora:\n  r: sixteen\n")
    with pytest.raises(ConfigError) as err:
        load_config(path, Demo)
    assert f"{path}:3: lora.r:" in str(err.value) and "integer" in str(err.value)


def test_missing_key_and_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="name: required key is missing"):
        load_config(write(tmp_path, "lr: 0.1\n"), Demo)
    with pytest.raises(ConfigError, match="config file not found: .*nope.yaml"):
        load_config(tmp_path / "nope.yaml", Demo)


def test_bad_yaml_and_bad_override(tmp_path):
    with pytest.raises(ConfigError, match=r"c.yaml:2: invalid YAML"):
        load_config(write(tmp_path, "name: a\n  bad: [\n"), Demo)
    with pytest.raises(ConfigError, match="expected key.path=value"):
        load_config(write(tmp_path, "name: a\n"), Demo, ["lora.r"])
    with pytest.raises(ConfigError, match=r"\(override\): lora.r"):
        load_config(write(tmp_path, "name: a\n"), Demo, ["lora.r=big"])


class Item(Strict):
    model: str
    size: int = 1


class WithList(Strict):
    bases: list[Item]


def test_override_indexes_lists_and_reports_bad_index(tmp_path):
    path = write(tmp_path, "bases:\n  - model: a\n  - model: b\n")
    cfg = load_config(path, WithList, ["bases.1.size=4", "bases.0.model=z"])
    assert [(b.model, b.size) for b in cfg.bases] == [("z", 1), ("b", 4)]
    with pytest.raises(ConfigError, match="no list item 5"):
        load_config(path, WithList, ["bases.5.model=x"])
