"""Safety suites as evaluation tasks: real data, eval-only splits kept out of training, per-category rates with
Wilson intervals, and a real run of the small model in which no answer to a harmful request reaches the report."""

from __future__ import annotations

import json

import pytest

from domainlm.data.usage import EVAL_ONLY, assert_trainable
from domainlm.errors import DataError
from domainlm.evals.report import wilson
from domainlm.evals.tasks import TaskContext, build_task
from domainlm.paths import dataset_dir
from tests.evals.conftest import write_config

CTX = TaskContext(vertical="medical", seed=1234)


def test_safety_tasks_read_the_real_sets_with_their_categories():
    med = build_task("medsafetybench", CTX)
    assert len(med.items) == 900 and {i.reference for i in med.items} == {"refuse"}
    assert len({i.fields["category"] for i in med.items}) == 9
    assert med.primary == "harmful_compliance" and not med.higher_is_better and not med.keep_output
    safe, unsafe = build_task("xstest_safe", CTX), build_task("xstest_unsafe", CTX)
    assert (len(safe.items), len(unsafe.items)) == (250, 200) and safe.primary == "over_refusal"
    assert {i.reference for i in safe.items} == {"comply"} and {i.reference for i in unsafe.items} == {"refuse"}
    zh = build_task("safetybench_zh", CTX)
    assert len(zh.items) == 2100 and len({i.fields["category"] for i in zh.items}) == 7
    assert all(2 <= len(i.choices) <= 4 and 0 <= i.gold < len(i.choices) for i in zh.items)


@pytest.mark.parametrize("vertical", ["petrochem", "marine"])
def test_the_authored_industrial_sets_pair_harmful_and_look_alike_requests(vertical):
    from domainlm.verticals import get_vertical

    harmful, lookalike = build_task(f"{vertical}_harmful", CTX), build_task(f"{vertical}_lookalike", CTX)
    assert len(harmful.items) >= 150 and len(lookalike.items) == len(harmful.items)
    assert harmful.primary == "harmful_compliance" and lookalike.primary == "over_refusal"
    assert not harmful.keep_output and {i.reference for i in harmful.items} == {"refuse"}
    for task in (harmful, lookalike):
        langs = [i.fields["lang"] for i in task.items]
        assert min(langs.count("zh"), langs.count("en")) >= 70      # both languages, about half each
        cats = [i.fields["category"] for i in task.items]
        assert len(set(cats)) == 4 and min(cats.count(c) for c in set(cats)) >= 35
    texts = [i.fields["question"] for t in (harmful, lookalike) for i in t.items]
    assert len(set(texts)) == len(texts)
    # eval-only: no training source of the vertical reads its safety folder
    spec = get_vertical(vertical).spec
    assert all(src.path != "safety" for src in spec.sources)


def test_the_eval_only_safety_sets_never_train(tmp_path):
    assert {"xstest", "safetybench_zh"} <= EVAL_ONLY
    test_file = next((dataset_dir("medsafetybench") / "test").glob("*/*.csv"))
    with pytest.raises(DataError, match=r"eval-only part \(test/\) of dataset 'medsafetybench'"):
        assert_trainable(test_file)
    assert_trainable(next((dataset_dir("medsafetybench") / "train").glob("*/*.csv")))   # the SFT split trains
    from domainlm.verticals.spec import Source

    with pytest.raises(ValueError, match="eval-only part of dataset 'medsafetybench'"):
        Source(name="x", dataset="medsafetybench", files=["test/*/*.csv"], format="medsafety_csv", lang="en",
               licence="MIT")


def test_wilson_interval_is_sound_at_the_edges():
    none = wilson([0.0] * 40)
    assert none["rate"] == 0.0 and none["ci_low"] == 0.0 and 0.08 < none["ci_high"] < 0.095   # 8.8% for n=40
    some = wilson([1.0] * 3 + [0.0] * 37)
    assert some["ci_low"] == pytest.approx(0.0258, abs=1e-3) and some["ci_high"] == pytest.approx(0.1986, abs=1e-3)
    assert wilson([])["rate"] is None


@pytest.mark.slow
def test_a_safety_run_reports_rates_per_category_and_keeps_no_answer_text(tmp_path, isolated_home,
                                                                            random_adapters):
    from domainlm.evals import run_eval

    config = write_config(tmp_path, domain=[], safety_tasks=[
        {"name": "medsafetybench", "limit": 6}, {"name": "xstest_safe", "limit": 4},
        {"name": "safetybench_zh", "limit": 6}], prompt={"style": "chat"})
    report = run_eval(config, adapters=[str(random_adapters["medical"])], output_dir=tmp_path / "out",
                      attach=False)
    adapter = report["subjects"][1]["label"]
    safety = report["summary"]["safety"]
    assert set(safety) == {"medsafetybench", "xstest_safe", "safetybench_zh"}
    for name, s in safety.items():
        task = report["tasks"][name]
        rates = [i["results"]["base"][s["metric"]] for i in task["items"]]
        assert s["base"]["rate"] == pytest.approx(sum(rates) / len(rates)) and s["base"]["n"] == len(rates)
        assert s["base"]["ci_low"] <= s["base"]["rate"] <= s["base"]["ci_high"]
        assert task["by_category"] and all(set(row) == {"base", adapter} for row in task["by_category"].values())
        for item in task["items"] if task["kind"] == "generate" else []:   # verdict and rule kept, text never
            for result in item["results"].values():
                assert "output" not in result and (result["refused"] == 1.0) == bool(result["refusal_rule"])
    raw = (tmp_path / "out" / "report.json").read_text()
    assert '"output"' not in raw
    markdown = (tmp_path / "out" / "report.md").read_text()
    assert "## Safety suite" in markdown and "harmful requests answered" in markdown
    assert "safetybench_zh by category" in markdown
    assert json.loads(raw)["tasks"]["safetybench_zh"]["suite"] == "safety"
