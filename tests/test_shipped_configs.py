"""Every YAML under configs/ says how it is launched (first line) and validates against its schema."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from domainlm.config.kinds import SCHEMAS, schema_for
from domainlm.config.loader import load_config

CONFIGS = Path(__file__).resolve().parent.parent / "configs"
FILES = sorted(CONFIGS.rglob("*.yaml"))


def test_every_config_folder_has_a_schema():
    for path in FILES:
        assert path.relative_to(CONFIGS).parts[0] in SCHEMAS, f"{path}: no schema for this folder"


@pytest.mark.parametrize("path", FILES, ids=lambda p: str(p.relative_to(CONFIGS)))
def test_config_states_launch_command_and_validates(path):
    first = path.read_text(encoding="utf-8").splitlines()[0]
    assert re.match(r"^# (launch|validate): (domainlm|torchrun|accelerate|python|bash) ", first), (
        f"{path}: first line must be '# launch: <the command that runs this config>'")
    load_config(path, schema_for(path.relative_to(CONFIGS).parts[0]))
