"""Tasks: every built-in benchmark loads from ../shared/data, sampling is deterministic, user tasks need no code."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from domainlm.config.loader import load_config
from domainlm.errors import ConfigError, DataError
from domainlm.evals.config import EvalConfig
from domainlm.evals.tasks import TaskContext, build_task, load_task_file, task_names
from domainlm.evals.tasks.base import render, sample_items
from domainlm.evals.tasks.exams import MMLU_IN_VERTICAL

CONFIGS = Path(__file__).resolve().parents[2] / "configs" / "eval"
CTX = TaskContext("medical", 1234)

# (task, items in the shared data, kind) — counts are the published sizes of each set (README table)
BUILTIN = [("medqa", 1273, "multiple_choice"), ("medmcqa", 2816, "multiple_choice"),
           ("mmlu_medical", 1089, "multiple_choice"), ("pubmedqa", 500, "generate"),
           ("pubmedqa_ll", 500, "multiple_choice"),
           ("formationeval", 505, "multiple_choice"), ("agieval_gaokao_chemistry", 207, "multiple_choice"),
           ("gaokao_bench_chemistry", 123, "multiple_choice"), ("scibench_chemistry", 223, "generate"),
           ("atmossci_physical_oceanography", 180, "multiple_choice"), ("geobench_ap", 1395, "multiple_choice")]


@pytest.mark.parametrize("name,count,kind", BUILTIN)
def test_builtin_task_loads_every_item(name, count, kind):
    task = build_task(name, CTX)
    assert task.kind == kind and len(task.items) == count
    assert len({i.id for i in task.items}) == count, "item ids must be unique (paired tests join on them)"
    for item in task.items:
        render(task, item)  # every template renders
        if kind == "multiple_choice":
            assert 2 <= len(item.choices) and 0 <= item.gold < len(item.choices)
        else:
            assert item.reference


def test_pubmedqa_ll_asks_exactly_what_lm_evaluation_harness_asks():
    """Same prompt text and choices as lm-eval's own pubmedqa task (its doc_to_text run on our raw rows), same
    items and gold as the generative `pubmedqa`: the two ways of scoring differ only in how the answer is read."""
    import importlib.util

    import lm_eval

    from domainlm.data.benchmarks import pubmedqa

    folder = Path(lm_eval.__file__).parent / "tasks" / "pubmedqa"
    spec = importlib.util.spec_from_file_location("preprocess_pubmedqa", folder / "preprocess_pubmedqa.py")
    theirs = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(theirs)
    choices = yaml.safe_load((folder / "pubmedqa.yaml").read_text().replace("!function", ""))["doc_to_choice"]
    raw = pubmedqa.questions()
    ll, gen = build_task("pubmedqa_ll", CTX), build_task("pubmedqa", CTX)
    assert [i.id for i in ll.items] == [i.id for i in gen.items]
    for item, twin in zip(ll.items, gen.items, strict=True):
        assert list(item.choices) == choices and item.choices[item.gold] == twin.reference
    for item in ll.items[:50]:
        assert render(ll, item) == theirs.doc_to_text(raw[item.id])


def test_chembench_keeps_single_answer_mc_and_cmmlu_medical_subjects():
    chem = build_task("chembench_mc", CTX)
    assert len(chem.items) == 2149 - 1001  # single-answer MC minus the `preference` topic
    assert {i.fields["topic"] for i in chem.items} >= {"safety", "technical_chemistry", "polymer_chemistry"}
    cm = build_task("cmmlu_medical", CTX)
    assert {i.fields["subject"] for i in cm.items} == {"anatomy", "clinical_knowledge", "college_medical_statistics",
                                                      "college_medicine", "genetics", "nutrition",
                                                      "professional_medicine", "traditional_chinese_medicine",
                                                      "virology"}


def test_general_suite_leaves_out_the_verticals_subjects_and_samples_per_subject():
    medical = build_task("mmlu_general", TaskContext("medical", 1), {"per_subject": 3})
    subjects = {i.fields["subject"] for i in medical.items}
    assert not subjects & MMLU_IN_VERTICAL["medical"]
    assert len(subjects) == 57 - len(MMLU_IN_VERTICAL["medical"]) and len(medical.items) == 3 * len(subjects)
    again = build_task("mmlu_general", TaskContext("medical", 1), {"per_subject": 3})
    other_seed = build_task("mmlu_general", TaskContext("medical", 2), {"per_subject": 3})
    assert [i.id for i in again.items] == [i.id for i in medical.items]
    assert [i.id for i in other_seed.items] != [i.id for i in medical.items]
    petro = build_task("cmmlu_general", TaskContext("petrochem", 1))
    assert "high_school_chemistry" not in {i.fields["subject"] for i in petro.items}
    assert "anatomy" in {i.fields["subject"] for i in petro.items}


def test_limit_sample_is_deterministic_and_nested():
    items = build_task("medmcqa", CTX).items
    eight, sixteen = sample_items(items, 8, 7, "medmcqa"), sample_items(items, 16, 7, "medmcqa")
    assert [i.id for i in eight] == [i.id for i in sample_items(items, 8, 7, "medmcqa")]
    assert {i.id for i in eight} < {i.id for i in sixteen}   # a bigger --limit reuses the smaller run's items


def test_every_suite_task_of_every_vertical_is_registered():
    from domainlm.verticals import get_vertical

    names = set(task_names())
    for vertical in ("medical", "petrochem", "marine"):
        v = get_vertical(vertical)
        assert set(v.eval_suite) <= names, f"{vertical}: {set(v.eval_suite) - names} not registered"
        assert set(v.general_suite) <= names
        shipped = load_config(CONFIGS / f"{vertical}.yaml", EvalConfig)
        assert set(v.eval_suite) <= {t.name for t in shipped.domain_tasks}, f"{vertical}.yaml misses suite tasks"


def test_heldout_tasks_read_the_verticals_eval_split():
    task = build_task("petrochem_heldout", TaskContext("petrochem", 1))
    assert task.kind == "nll" and len(task.items) > 20
    first = task.items[0]
    assert first.messages[0]["role"] == "system" and first.messages[-1]["role"] == "user" and first.reference
    gen = build_task("marine_heldout_gen", TaskContext("marine", 1))
    assert gen.kind == "generate" and gen.primary == "rouge_l"


def test_user_task_from_jsonl_and_yaml(task_dir):
    (task_dir / "q.jsonl").write_text(
        '{"qid": "a", "q": "2+2?", "opts": ["3", "4"], "ans": "B"}\n{"qid": "b", "q": "3+3?", "opts": ["6", "7"], '
        '"ans": 0}\n{"qid": "c", "q": "1+1?", "opts": ["2", "5"], "ans": "2"}\n')
    (task_dir / "t.yaml").write_text(yaml.safe_dump({
        "name": "arith", "kind": "multiple_choice", "data": "q.jsonl", "template": "Q: {q}\n{options}\nA:",
        "choice_style": "letters", "fields": {"id": "qid", "choices": "opts", "answer": "ans"}}))
    task = load_task_file(task_dir / "t.yaml")
    assert [i.gold for i in task.items] == [1, 0, 0]       # letter, index, option text
    assert render(task, task.items[0]) == "Q: 2+2?\nA. 3\nB. 4\nA:"


def test_user_task_from_csv_columns(task_dir):
    (task_dir / "q.csv").write_text("question,A,B,C,answer\nWhich gas?,O2,N2,Ar,B\n")
    (task_dir / "t.yaml").write_text(yaml.safe_dump({
        "name": "gas", "kind": "multiple_choice", "data": "q.csv",
        "fields": {"choices": ["A", "B", "C"], "answer": "answer"}}))
    task = load_task_file(task_dir / "t.yaml")
    assert task.items[0].choices == ("O2", "N2", "Ar") and task.items[0].gold == 1


def test_user_task_errors_name_the_file_and_row(task_dir):
    (task_dir / "bad.yaml").write_text("name: x\nkind: multiple_choice\ndata: q.jsonl\nfields:\n  choice: opts\n")
    with pytest.raises(ConfigError, match=r"bad.yaml:5: fields.choice: unknown key"):
        load_task_file(task_dir / "bad.yaml")
    (task_dir / "q.jsonl").write_text('{"q": "x", "opts": ["a", "b"], "ans": "C"}\n')
    (task_dir / "t.yaml").write_text(yaml.safe_dump({"name": "x", "kind": "multiple_choice", "data": "q.jsonl",
                                                     "fields": {"choices": "opts", "answer": "ans"}}))
    with pytest.raises(DataError, match=r"q.jsonl: row 1: answer 'C' does not name one of the 2 options"):
        load_task_file(task_dir / "t.yaml")


def test_eval_config_rejects_ambiguous_task_refs(tmp_path):
    path = tmp_path / "e.yaml"
    path.write_text("vertical: medical\ndomain_tasks:\n  - {name: medqa, file: x.yaml}\n")
    with pytest.raises(ConfigError, match=r"e.yaml:3: domain_tasks.0: Value error, give exactly one"):
        load_config(path, EvalConfig)
