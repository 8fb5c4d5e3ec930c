"""MMLU and CMMLU tasks (rows from domainlm.data.benchmarks), shared by domain and general-regression tasks."""

from __future__ import annotations

from domainlm.data.benchmarks import cmmlu, mmlu
from domainlm.evals.tasks.base import Item, Task, letter_index, stable_rank

MMLU = mmlu.DATASET
CMMLU = cmmlu.DATASET
MMLU_TEMPLATE = "{question}\n{options}\nAnswer:"
CMMLU_TEMPLATE = "{question}\n{options}\n答案："

CMMLU_MEDICAL = frozenset({
    "anatomy", "clinical_knowledge", "college_medical_statistics", "college_medicine", "genetics", "nutrition",
    "professional_medicine", "traditional_chinese_medicine", "virology",
})

# Subjects that belong to a vertical's domain: the general-regression suite leaves them out for that vertical.
MMLU_IN_VERTICAL = {
    "medical": {"anatomy", "clinical_knowledge", "college_biology", "college_medicine", "medical_genetics",
                "professional_medicine", "nutrition", "virology", "human_aging", "high_school_biology"},
    "petrochem": {"college_chemistry", "high_school_chemistry"},
    "marine": {"high_school_geography", "astronomy", "conceptual_physics", "high_school_physics", "college_physics"},
}
CMMLU_IN_VERTICAL = {
    "medical": set(CMMLU_MEDICAL) | {"high_school_biology"},
    "petrochem": {"high_school_chemistry"},
    "marine": {"high_school_geography", "astronomy", "conceptual_physics", "high_school_physics",
               "college_engineering_hydrology"},
}


mmlu_subjects = mmlu.subjects
cmmlu_subjects = cmmlu.subjects


def mmlu_items(subject: str, split: str = "test") -> list[Item]:
    rows = mmlu.rows(subject, split)
    return [Item(id=f"{subject}/{split}/{i}", fields={"question": r["question"].strip(), "subject": subject},
                 choices=(r["A"], r["B"], r["C"], r["D"]), gold=letter_index(r["answer"], 4))
            for i, r in enumerate(rows)]


def cmmlu_items(subject: str, split: str = "test") -> list[Item]:
    rows = cmmlu.rows(subject, split)
    return [Item(id=f"{subject}/{split}/{r.get('') or i}",
                 fields={"question": r["Question"].strip(), "subject": subject},
                 choices=(r["A"], r["B"], r["C"], r["D"]), gold=letter_index(r["Answer"], 4))
            for i, r in enumerate(rows)]


def per_subject_sample(items: list[Item], per_subject: int | None, seed: int, name: str) -> list[Item]:
    """Keep `per_subject` items of each subject, chosen by a seeded hash (deterministic across machines)."""
    if not per_subject:
        return items
    by_subject: dict[str, list[Item]] = {}
    for item in items:
        by_subject.setdefault(item.fields["subject"], []).append(item)
    keep = set()
    for group in by_subject.values():
        keep.update(i.id for i in sorted(group, key=lambda i: stable_rank(seed, name, i.id))[:per_subject])
    return [item for item in items if item.id in keep]


def mmlu_task(name: str, subjects: list[str], per_subject: int | None = None, seed: int = 0) -> Task:
    items = [item for s in subjects for item in mmlu_items(s)]
    return Task(name, "multiple_choice", per_subject_sample(items, per_subject, seed, name), template=MMLU_TEMPLATE,
                choice_style="letters", fewshot_pool=[i for s in subjects for i in mmlu_items(s, "dev")],
                sources=(MMLU,), description=f"MMLU, {len(subjects)} subjects")


def cmmlu_task(name: str, subjects: list[str], per_subject: int | None = None, seed: int = 0) -> Task:
    items = [item for s in subjects for item in cmmlu_items(s)]
    return Task(name, "multiple_choice", per_subject_sample(items, per_subject, seed, name), template=CMMLU_TEMPLATE,
                choice_style="letters", fewshot_pool=[i for s in subjects for i in cmmlu_items(s, "dev")],
                language="zh", sources=(CMMLU,), description=f"CMMLU, {len(subjects)} subjects")
