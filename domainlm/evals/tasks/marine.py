"""Marine benchmarks: AtmosSci-Bench physical oceanography MC, GeoBench AP-study MC."""

from __future__ import annotations

from domainlm.data.benchmarks import atmossci, geobench
from domainlm.evals.tasks.base import Item, Task, letter_index
from domainlm.evals.tasks.registry import register_task

MC_EN = "Question: {question}\n{options}\nAnswer:"


@register_task("atmossci_physical_oceanography", "AtmosSci-Bench physical-oceanography MC (180, templated)")
def atmossci_physical_oceanography(ctx) -> Task:
    items = []
    for name in atmossci.MCQ_FILES:
        for row in atmossci.rows(name):
            if row["type"] != "Physical Oceanography":
                continue
            choices = tuple(row["options"])
            items.append(Item(id=row["id"], fields={"question": row["problem"].strip()}, choices=choices,
                              gold=letter_index(row["correct_option"], len(choices))))
    return Task("atmossci_physical_oceanography", "multiple_choice", items, template=MC_EN,
                sources=("atmossci_bench",))


@register_task("geobench_ap", "GeoBench AP-study geoscience MC (1,395, 5 options)")
def geobench_ap(ctx) -> Task:
    items = []
    for number, row in enumerate(geobench.apstudy()):
        choices = tuple(c["text"] for c in sorted(row["question"]["choices"], key=lambda c: c["label"]))
        items.append(Item(id=str(number), fields={"question": row["question"]["stem"].strip()}, choices=choices,
                          gold=letter_index(row["answerKey"], len(choices))))
    return Task("geobench_ap", "multiple_choice", items, template=MC_EN, sources=("geobench_k2",),
                description="GeoBench (non-commercial use only)")
