"""Medical benchmarks: MedQA (USMLE), MedMCQA, MMLU-medical, PubMedQA, CMMLU medical subjects."""

from __future__ import annotations

from domainlm.data.benchmarks import medagents, pubmedqa as pubmedqa_files
from domainlm.evals.tasks.base import Item, Task, letter_index
from domainlm.evals.tasks.exams import CMMLU_MEDICAL, cmmlu_task
from domainlm.evals.tasks.registry import register_task

MC_EN = "Question: {question}\n{options}\nAnswer:"


def medagents_items(dataset: str) -> list[Item]:
    """MedAgentsBench JSONL: question, options {A: text, …}, answer_idx letter."""
    items = []
    for number, row in enumerate(medagents.rows(dataset)):
        letters = sorted(row["options"])
        choices = tuple(str(row["options"][k]) for k in letters)
        rid = f"{row.get('subject', '')}{'/' if row.get('subject') else ''}{row.get('realidx', number)}"
        items.append(Item(id=rid, fields={"question": row["question"].strip()}, choices=choices,
                          gold=letter_index(row["answer_idx"], len(choices))))
    return items


@register_task("medqa", "MedQA USMLE 4-option test (1,273), log-likelihood MC")
def medqa(ctx) -> Task:
    return Task("medqa", "multiple_choice", medagents_items("medqa_usmle_4opt"), template=MC_EN,
                sources=("medqa_usmle_4opt",))


@register_task("medmcqa", "MedMCQA (MedAgentsBench test, 2,816), log-likelihood MC")
def medmcqa(ctx) -> Task:
    return Task("medmcqa", "multiple_choice", medagents_items("medmcqa_medagents"), template=MC_EN,
                sources=("medmcqa_medagents",))


@register_task("mmlu_medical", "MMLU medical subjects (6 subjects, 1,089), log-likelihood MC")
def mmlu_medical(ctx) -> Task:
    return Task("mmlu_medical", "multiple_choice", medagents_items("mmlu_medical_medagents"), template=MC_EN,
                sources=("mmlu_medical_medagents",))


PUBMEDQA_LABELS = pubmedqa_files.LABELS


def pubmedqa_items() -> list[Item]:
    """The 500 expert-labelled test questions (pmid, abstract contexts, question, label), in file order."""
    questions = pubmedqa_files.questions()
    truth = pubmedqa_files.test_labels()
    return [Item(id=pmid, fields={"question": questions[pmid]["QUESTION"],
                                  "context": " ".join(questions[pmid]["CONTEXTS"]),
                                  "abstract": "\n".join(questions[pmid]["CONTEXTS"])},   # lm-eval's layout
                 reference=label)
            for pmid, label in truth.items()]


@register_task("pubmedqa", "PubMedQA expert-labelled test (500): generated yes/no/maybe, label extraction")
def pubmedqa(ctx) -> Task:
    """Generative: does the model answer in the label format, and with the right label (label_acc)."""
    items = pubmedqa_items()
    return Task("pubmedqa", "generate", items, labels=PUBMEDQA_LABELS, primary="label_acc",
                template="Context: {context}\nQuestion: {question}\nAnswer with yes, no or maybe.\nAnswer:",
                max_new_tokens=8, sources=("pubmedqa",))


@register_task("pubmedqa_ll", "PubMedQA expert-labelled test (500): yes/no/maybe by label log-likelihood "
                             "(lm-evaluation-harness's pubmedqa; comparable to published numbers)")
def pubmedqa_ll(ctx) -> Task:
    """The same items scored as lm-evaluation-harness scores PubMedQA: the log-likelihood of " yes", " no" and
    " maybe" after its prompt. It measures what the model knows regardless of answer format; `pubmedqa` measures
    whether it answers in the format (a fine-tune can move the two apart)."""
    items = [Item(id=i.id, fields=i.fields, choices=PUBMEDQA_LABELS, gold=PUBMEDQA_LABELS.index(i.reference))
             for i in pubmedqa_items()]
    return Task("pubmedqa_ll", "multiple_choice", items, template="Abstract: {abstract}\nQuestion: {question}\nAnswer:",
                sources=("pubmedqa",))


@register_task("cmmlu_medical", "CMMLU medical subjects (zh, 9 subjects), log-likelihood MC over letters")
def cmmlu_medical(ctx, subjects: list[str] | None = None) -> Task:
    return cmmlu_task("cmmlu_medical", subjects or sorted(CMMLU_MEDICAL))
