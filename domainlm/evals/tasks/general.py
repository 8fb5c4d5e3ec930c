"""General-regression suite: MMLU and CMMLU subjects outside the suite's vertical, sampled per subject."""

from __future__ import annotations

from domainlm.evals.tasks.base import Item, Task
from domainlm.evals.tasks.exams import (CMMLU_IN_VERTICAL, MMLU, MMLU_IN_VERTICAL, MMLU_TEMPLATE, cmmlu_subjects,
                                        cmmlu_task, mmlu_items, mmlu_subjects, mmlu_task)
from domainlm.evals.tasks.registry import register_task


@register_task("mmlu_general", "MMLU subjects outside the vertical, `per_subject` items each (default 4)")
def mmlu_general(ctx, per_subject: int = 4) -> Task:
    subjects = [s for s in mmlu_subjects() if s not in MMLU_IN_VERTICAL.get(ctx.vertical, set())]
    return mmlu_task("mmlu_general", subjects, per_subject=per_subject, seed=ctx.seed)


@register_task("cmmlu_general", "CMMLU subjects outside the vertical (zh), `per_subject` items each (default 4)")
def cmmlu_general(ctx, per_subject: int = 4) -> Task:
    subjects = [s for s in cmmlu_subjects() if s not in CMMLU_IN_VERTICAL.get(ctx.vertical, set())]
    return cmmlu_task("cmmlu_general", subjects, per_subject=per_subject, seed=ctx.seed)


def _mmlu_dev(ctx) -> list[Item]:
    subjects = [s for s in mmlu_subjects() if s not in MMLU_IN_VERTICAL.get(ctx.vertical, set())]
    return [item for s in subjects for item in mmlu_items(s, "dev")]


@register_task("mmlu_dev", "MMLU dev split outside the vertical (5 per subject): general ability for `domainlm sweep`"
                           " trials — disjoint from the test items that gate and from the replay pool (val)")
def mmlu_dev(ctx) -> Task:
    return Task("mmlu_dev", "multiple_choice", _mmlu_dev(ctx), template=MMLU_TEMPLATE, choice_style="letters",
                sources=(MMLU,), description="MMLU dev split, outside the vertical")


@register_task("format_dev", "yes/no/maybe answers to 'is this option correct?' on the MMLU dev split, PubMedQA's "
                             "prompt layout: format adherence for `domainlm sweep` trials (never a gating item)")
def format_dev(ctx) -> Task:
    items = [Item(id=f"{i.id}/opt{n}", fields={"context": i.fields["question"], "option": i.choices[n]},
                  reference="yes" if n == i.gold else "no")
             for i in _mmlu_dev(ctx) for n in (i.gold, (i.gold + 1) % len(i.choices))]
    return Task("format_dev", "generate", items, labels=("yes", "no", "maybe"), primary="format_ok",
                template="Context: {context}\nQuestion: Is \"{option}\" the correct answer?\n"
                         "Answer with yes, no or maybe.\nAnswer:", max_new_tokens=8, sources=(MMLU,))
