"""Verticals are data: three built-ins with the same parts, a fourth added by one folder + one YAML, and
registration that refuses bad specs with file:line messages."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

from domainlm.config.kinds import schema_for
from domainlm.config.loader import load_config
from domainlm.errors import ConfigError
from domainlm.verticals import get_vertical, list_verticals, register_vertical
from domainlm.verticals.registry import BUILTIN
from domainlm.verticals.spec import VerticalSpec
from tests.fixtures.verticals import SHIPPING_YAML, write_shipping

AGREED_SUITES = {  # task names agreed with domainlm.evals
    "medical": ["medqa", "medmcqa", "mmlu_medical", "pubmedqa", "pubmedqa_ll", "cmmlu_medical",
                "medquad_heldout_nll"],
    "petrochem": ["chembench_mc", "formationeval", "agieval_gaokao_chemistry", "gaokao_bench_chemistry",
                  "scibench_chemistry", "petrochem_heldout"],
    "marine": ["atmossci_physical_oceanography", "geobench_ap", "marine_heldout"],
}


def test_builtin_verticals_have_the_same_parts():
    assert {"medical", "petrochem", "marine"} <= set(list_verticals())
    for name, suite in AGREED_SUITES.items():
        v = get_vertical(name)
        assert v.name == name and v.folder == BUILTIN / name
        assert v.title["en"] and re.search(r"[\u4e00-\u9fff]", v.title["zh"])
        assert v.system_prompt("en") != v.system_prompt("zh") and re.search(r"[\u4e00-\u9fff]", v.system_prompt("zh"))
        assert v.system_prompt.model_dump() == {"en": v.system_prompt("en"), "zh": v.system_prompt("zh")}
        assert v.eval_suite == suite
        assert v.general_suite == ["mmlu_general", "cmmlu_general"]
        assert v.gates.require_significance and v.gates.max_general_regression is None
        assert 0 < v.gates.general_noninferiority.margin <= 2 and v.gates.general_noninferiority.min_items >= 600
        # every built-in folder: vertical.yaml (+ data/ where the project authored data, + safety/ where it
        # authored safety prompts: eval-only, no source reads it)
        parts = sorted(p.name for p in v.folder.iterdir() if p.name != "__pycache__")
        assert parts in (["vertical.yaml"], ["data", "vertical.yaml"], ["data", "safety", "vertical.yaml"])


def test_shipped_vertical_yamls_state_their_command_and_validate():
    schema = schema_for("verticals")
    assert schema is VerticalSpec
    for path in sorted(BUILTIN.glob("*/vertical.yaml")):
        first = path.read_text(encoding="utf-8").splitlines()[0]
        assert first == f"# validate: domainlm data inspect {path.parent.name}", path
        load_config(path, schema)
        for line in path.read_text(encoding="utf-8").splitlines():
            if re.match(r"^[a-z_]+:", line):  # every top-level key explains itself
                assert "#" in line, f"{path}: top-level key without a comment: {line}"


def test_policy_is_as_the_issue_asks():
    med, pet, mar = (get_vertical(n).policy for n in ("medical", "petrochem", "marine"))
    assert med.disclaimer_mode == "always" and not med.log_prompts and med.hash_prompts
    assert {n.name for n in med.safety_notes} >= {"clinician_for_dosing", "clinician_for_diagnosis"}
    assert [n.name for n in pet.safety_notes] == ["hse_hazardous_operation"]
    assert {n.name for n in mar.safety_notes} == {"navigation_safety", "offshore_safety"}


def test_fourth_vertical_is_one_folder_and_one_yaml(tmp_path, clean_vertical_registry):
    folder = write_shipping(tmp_path)
    v = register_vertical(folder)  # the one validated call
    assert get_vertical("shipping") is v and "shipping" in list_verticals()
    assert register_vertical(folder / "vertical.yaml") is v  # same folder again: idempotent
    train, dev, held = v.sft_rows("train"), v.sft_rows("dev"), v.sft_rows("eval")
    assert len(train) + len(dev) + len(held) == 40 and held and train and dev
    assert not {r["id"] for r in train} & {r["id"] for r in held}
    assert not {r["id"] for r in dev} & ({r["id"] for r in train} | {r["id"] for r in held})
    assert train[0]["messages"][0] == {"role": "system", "content": v.system_prompt(train[0]["lang"])}
    sources = v.data_sources()
    assert sources[0]["rows"] == 40 and sources[0]["project_authored"] and len(sources[0]["sha256"]) == 64


def test_fourth_vertical_from_the_plugin_path_in_a_fresh_process(tmp_path):
    write_shipping(tmp_path)
    env = {**os.environ, "DOMAINLM_VERTICALS_PATH": str(tmp_path), "DOMAINLM_HOME": str(tmp_path / "home")}
    listed = subprocess.run([sys.executable, "-m", "domainlm.cli", "data", "list"], check=False, capture_output=True,
                            text=True, env=env, timeout=120)
    assert listed.returncode == 0, listed.stderr
    assert re.search(r"^shipping\s+Shipping / 航运", listed.stdout, flags=re.MULTILINE)
    card = subprocess.run([sys.executable, "-m", "domainlm.cli", "data", "card", "shipping", "--no-decontamination",
                           "--out", str(tmp_path / "card")], check=False, capture_output=True, text=True, env=env,
                          timeout=120)
    assert card.returncode == 0, card.stderr
    assert "| faq | CC0-1.0 | project-authored | 40 |" in (tmp_path / "card" / "data_card.md").read_text()


def _yaml_with(tmp_path, old: str, new: str):
    assert old in SHIPPING_YAML
    return write_shipping(tmp_path, yaml_text=SHIPPING_YAML.replace(old, new, 1))


@pytest.mark.parametrize("old,new,message", [
    ("    path: data                    # folder relative to the vertical folder\n",
     "    dataset: chembench\n    split: hash\n", "eval-only"),
    ("    path: data                    # folder relative to the vertical folder\n",
     "    dataset: huatuo_llama_med\n", "restricted"),
    ("['dangerous goods|imdg']", "['dangerous (goods']", "not a valid regular expression"),
    ("eval_suite: [shipping_heldout]", "eval_suite: [Shipping-Heldout]", "lowercase identifiers"),
    ("    format: qa_jsonl ", "    format: xml_dump ", "unknown format"),
    ("  log_prompts: false ", "  risk_class: severe\n  log_prompts: false ", "'high', 'medium' or 'low'"),
    ("  log_prompts: false ", "  guardrails: {on_input: hold}\n  log_prompts: false ", "on_input: hold is not"),
    ("  log_prompts: false ", "  guardrails: {on_output: block}\n  log_prompts: false ",
     "'allow', 'notice', 'refuse' or 'hold'"),
    ("  log_prompts: false ", "  output_checks: [{name: leak, patterns: {en: ['(unclosed']}}]\n  log_prompts: false ",
     "not a valid regular expression"),
])
def test_bad_specs_are_refused_with_file_and_line(tmp_path, clean_vertical_registry, old, new, message):
    folder = _yaml_with(tmp_path, old, new)
    with pytest.raises(ConfigError) as err:
        register_vertical(folder)
    assert message in str(err.value)
    assert re.search(rf"{re.escape(str(folder / 'vertical.yaml'))}:\d+: ", str(err.value))
    assert "shipping" not in clean_vertical_registry._VERTICALS


def test_name_and_folder_rules(tmp_path, clean_vertical_registry):
    with pytest.raises(ConfigError, match="folder named 'shipping'"):
        folder = write_shipping(tmp_path)
        register_vertical(folder.rename(tmp_path / "boats"))
    medical_clone = write_shipping(tmp_path / "other",
                                   yaml_text=SHIPPING_YAML.replace("name: shipping", "name: medical"))
    with pytest.raises(ConfigError, match="folder named 'medical'"):
        register_vertical(medical_clone)
    elsewhere = tmp_path / "x" / "medical"
    elsewhere.parent.mkdir()
    medical_clone.rename(elsewhere)
    with pytest.raises(ConfigError, match="'medical' is already registered"):
        register_vertical(elsewhere)
    with pytest.raises(ConfigError, match="unknown vertical 'nope'"):
        get_vertical("nope")
