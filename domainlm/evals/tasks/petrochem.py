"""Petrochemical benchmarks: ChemBench MC subsets, FormationEval, AGIEval and GAOKAO chemistry, SciBench chemistry."""

from __future__ import annotations

import re

from domainlm.data.benchmarks import agieval, chembench, formationeval as formationeval_files, gaokao_bench, scibench
from domainlm.evals.tasks.base import Item, Task, letter_index
from domainlm.evals.tasks.registry import register_task

MC_EN = "Question: {question}\n{options}\nAnswer:"
MC_ZH = "问题：{question}\n{options}\n答案："
OPTION_PREFIX = re.compile(r"^\s*\(?[A-Z]\)\s*")           # AGIEval writes options as "(A)text"
INLINE_OPTION = re.compile(r"(?:^|\n)\s*([A-D])\s*[.．、:：]\s*")  # GAOKAO-Bench puts "A. text" lines in the question


@register_task("chembench_mc", "ChemBench single-answer MC questions (all topics but `preference` by default)")
def chembench_mc(ctx, topics: list[str] | None = None, exclude_topics: tuple[str, ...] = ("preference",)) -> Task:
    items = []
    for row in chembench.rows():
        example = row["examples"][0]
        scores = example.get("target_scores")
        topic = row["_topic_dir"]
        if row["preferred_score"] != "multiple_choice_grade" or not scores or sum(scores.values()) != 1:
            continue  # numeric and multiple-answer questions are not single-answer MC
        if (topics and topic not in topics) or (not topics and topic in exclude_topics):
            continue
        choices = tuple(scores)
        items.append(Item(id=row["uuid"], fields={"question": example["input"].strip(), "topic": topic},
                          choices=choices, gold=[scores[c] for c in choices].index(1)))
    return Task("chembench_mc", "multiple_choice", items, template=MC_EN, sources=("chembench",),
                description="ChemBench (canary: evaluation only)")


@register_task("formationeval", "FormationEval oil & gas MC (505)")
def formationeval(ctx) -> Task:
    items = [Item(id=row["id"], fields={"question": row["question"].strip()}, choices=tuple(row["choices"]),
                  gold=int(row["answer_index"]))
             for row in formationeval_files.rows()]
    return Task("formationeval", "multiple_choice", items, template=MC_EN, sources=("formationeval_oil_gas",))


@register_task("agieval_gaokao_chemistry", "AGIEval Gaokao chemistry (zh, 207), MC over letters")
def agieval_gaokao_chemistry(ctx) -> Task:
    items = []
    for number, row in enumerate(agieval.rows()):
        choices = tuple(OPTION_PREFIX.sub("", option, count=1).strip() for option in row["options"])
        items.append(Item(id=str(number), fields={"question": row["question"].strip()}, choices=choices,
                          gold=letter_index(row["label"], len(choices))))
    return Task("agieval_gaokao_chemistry", "multiple_choice", items, template=MC_ZH, choice_style="letters",
                language="zh", sources=("agieval_gaokao_chemistry",))


@register_task("gaokao_bench_chemistry", "GAOKAO-Bench chemistry MCQs (zh, options inside the question)")
def gaokao_bench_chemistry(ctx) -> Task:
    rows = gaokao_bench.examples()
    items = []
    for number, row in enumerate(rows):
        letters = "".join(INLINE_OPTION.findall(row["question"]))
        if letters != "ABCD"[: len(letters)] or len(letters) < 2 or len(row["answer"]) != 1:
            continue  # two questions do not print their options as "A. …" lines
        parts = INLINE_OPTION.split(row["question"])  # [stem, 'A', text, 'B', text, …]
        choices = tuple(parts[i + 1].strip() for i in range(1, len(parts), 2))
        items.append(Item(id=f"{row['year']}/{number}", fields={"question": parts[0].strip()}, choices=choices,
                          gold=letter_index(row["answer"][0], len(choices))))
    return Task("gaokao_bench_chemistry", "multiple_choice", items, template=MC_ZH, choice_style="letters",
                language="zh", sources=("gaokao_bench_chemistry",))


@register_task("scibench_chemistry", "SciBench chemistry (atkins, chemmc, matter, quan): numeric answers, 5% tolerance")
def scibench_chemistry(ctx, books: tuple[str, ...] = ("atkins", "chemmc", "matter", "quan")) -> Task:
    items = []
    for book in books:
        for number, row in enumerate(scibench.book(book)):
            unit = (row.get("unit") or "").strip() or "(no unit)"
            items.append(Item(id=f"{book}/{row.get('problemid', number).strip()}/{number}",
                              fields={"question": row["problem_text"].strip(), "unit": unit},
                              reference=str(row["answer_number"]).strip()))
    return Task("scibench_chemistry", "generate", items, primary="numeric_acc",
                template="Problem: {question}\nGive only the final numeric answer, in {unit}.\nAnswer:",
                max_new_tokens=24, tolerance=0.05, stop=("\n",), sources=("scibench_chemistry",))
