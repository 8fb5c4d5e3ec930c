"""General-regression suite: MMLU and CMMLU subjects outside the suite's vertical, sampled per subject."""

from __future__ import annotations

from domainlm.evals.tasks.base import Task
from domainlm.evals.tasks.exams import (CMMLU_IN_VERTICAL, MMLU_IN_VERTICAL, cmmlu_subjects, cmmlu_task,
                                        mmlu_subjects, mmlu_task)
from domainlm.evals.tasks.registry import register_task


@register_task("mmlu_general", "MMLU subjects outside the vertical, `per_subject` items each (default 4)")
def mmlu_general(ctx, per_subject: int = 4) -> Task:
    subjects = [s for s in mmlu_subjects() if s not in MMLU_IN_VERTICAL.get(ctx.vertical, set())]
    return mmlu_task("mmlu_general", subjects, per_subject=per_subject, seed=ctx.seed)


@register_task("cmmlu_general", "CMMLU subjects outside the vertical (zh), `per_subject` items each (default 4)")
def cmmlu_general(ctx, per_subject: int = 4) -> Task:
    subjects = [s for s in cmmlu_subjects() if s not in CMMLU_IN_VERTICAL.get(ctx.vertical, set())]
    return cmmlu_task("cmmlu_general", subjects, per_subject=per_subject, seed=ctx.seed)
