"""Safety suites: harmful requests (is the answer a refusal?), look-alike safe requests (over-refusal), SafetyBench.

Generated answers are judged by domainlm.verticals.refusal (offline rules, en + zh); the report keeps the verdict and
the rule that fired, never the answer text (answers to harmful requests may be harmful). Each item carries its
category, so the report gives per-category rates with Wilson 95% intervals. The first 48 tokens are enough: the
rules read the answer's opening.
"""

from __future__ import annotations

from domainlm.data.benchmarks import medsafetybench, safetybench_zh, xstest
from domainlm.evals.tasks.base import Item, Task
from domainlm.evals.tasks.registry import register_task

OPENING_TOKENS = 48


def _request_task(name: str, items: list[Item], primary: str, language: str, source: str, description: str) -> Task:
    return Task(name, "generate", items, template="{question}", primary=primary, max_new_tokens=OPENING_TOKENS,
                stop=(), language=language, sources=(source,), description=description, keep_output=False)


@register_task("medsafetybench", "MedSafetyBench test (900 harmful medical requests, 9 AMA-ethics categories): "
                                 "harmful compliance rate (lower is better)")
def medsafety(ctx) -> Task:
    items = [Item(id=row["id"], fields={"question": row["request"], "category": row["category"]}, reference="refuse")
             for row in medsafetybench.rows()]
    return _request_task("medsafetybench", items, "harmful_compliance", "en", medsafetybench.DATASET,
                         "harmful medical requests answered instead of refused")


def _xstest_items(label: str) -> list[Item]:
    return [Item(id=row["id"], fields={"question": row["prompt"], "category": row["type"]},
                 reference="comply" if label == "safe" else "refuse")
            for row in xstest.rows() if row["label"] == label]


@register_task("xstest_safe", "XSTest: 250 safe prompts that look unsafe (10 types): over-refusal rate "
                              "(lower is better)")
def xstest_safe(ctx) -> Task:
    return _request_task("xstest_safe", _xstest_items("safe"), "over_refusal", "en", xstest.DATASET,
                         "safe requests refused")


@register_task("xstest_unsafe", "XSTest: 200 unsafe contrast prompts (8 types): harmful compliance rate "
                                "(lower is better)")
def xstest_unsafe(ctx) -> Task:
    return _request_task("xstest_unsafe", _xstest_items("unsafe"), "harmful_compliance", "en", xstest.DATASET,
                         "unsafe requests answered instead of refused")


@register_task("safetybench_zh", "SafetyBench zh subset (2,100 MC, 7 categories): safety judgement accuracy, "
                                 "log-likelihood over option letters")
def safetybench(ctx) -> Task:
    items = [Item(id=row["id"], fields={"question": row["question"], "category": row["category"]},
                  choices=tuple(row["options"]), gold=row["answer"])
             for row in safetybench_zh.rows()]
    return Task("safetybench_zh", "multiple_choice", items, template="问题：{question}\n选项：\n{options}\n答案：",
                choice_style="letters", language="zh", sources=(safetybench_zh.DATASET,),
                description="SafetyBench zh, 7 categories")


# --- the project-authored sets of the industrial verticals: harmful requests and look-alike safe ones ---------------
AUTHORED = {"petrochem": "process-safety sabotage, bypassing interlocks/SIS, explosives or toxic gas from plant "
                         "chemicals, evading environmental monitoring; look-alikes: HAZOP/LOPA, authorised bypass, "
                         "chemical hazards, environmental compliance",
            "marine": "AIS/VMS evasion, illegal discharge, falsified records, unsafe diving; look-alikes: lawful AIS "
                      "use, MARPOL-compliant discharge, record keeping, diving safety"}


def authored_prompts(vertical: str, label: str) -> list[Item]:
    """The vertical's authored safety prompts (domainlm/verticals/<v>/safety/prompts.jsonl, zh + en) with `label`
    harmful or safe; eval-only: no training source reads that folder."""
    import json

    from domainlm.verticals import get_vertical

    path = get_vertical(vertical).folder / "safety" / "prompts.jsonl"
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    return [Item(id=row["id"], fields={"question": row["prompt"], "category": row["category"], "lang": row["lang"]},
                 reference="refuse" if label == "harmful" else "comply")
            for row in rows if row["label"] == label]


def _register_authored(vertical: str) -> None:
    @register_task(f"{vertical}_harmful", f"{vertical}: 156 authored harmful requests (zh + en; {AUTHORED[vertical]}):"
                                          " harmful compliance rate (lower is better)")
    def harmful(ctx) -> Task:
        return _request_task(f"{vertical}_harmful", authored_prompts(vertical, "harmful"), "harmful_compliance",
                             "zh+en", f"{vertical}_safety", f"harmful {vertical} requests answered instead of refused")

    @register_task(f"{vertical}_lookalike", f"{vertical}: 156 authored safe requests that look like the harmful ones "
                                            "(zh + en): over-refusal rate (lower is better)")
    def lookalike(ctx) -> Task:
        return _request_task(f"{vertical}_lookalike", authored_prompts(vertical, "safe"), "over_refusal", "zh+en",
                             f"{vertical}_safety", f"safe {vertical} requests refused")


for _vertical in AUTHORED:
    _register_authored(_vertical)
