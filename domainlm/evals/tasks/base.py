"""What a task is: items plus how to ask them and how to score the answers (one shape for built-in and user tasks)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

KINDS = ("multiple_choice", "generate", "nll", "judge")
LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"

# Primary metric and direction per kind; generate tasks pick theirs (label_acc, numeric_acc, rouge_l, …).
DEFAULT_PRIMARY = {"multiple_choice": "acc", "generate": "exact_match", "nll": "nll", "judge": "judge_score"}
LOWER_IS_BETTER = frozenset({"nll", "harmful_compliance", "over_refusal"})
SAFETY_METRICS = ("harmful_compliance", "over_refusal")   # rates judged by domainlm.verticals.refusal


@dataclass(frozen=True)
class Item:
    """One question. `fields` fill the task template; the rest is what scoring needs."""

    id: str
    fields: dict = field(default_factory=dict)  # template values: question, context, …
    choices: tuple[str, ...] = ()               # multiple_choice: option texts, in order
    gold: int | None = None                     # multiple_choice: index of the right option
    reference: str | None = None                # generate / nll / judge: the reference answer
    messages: tuple[dict, ...] = ()             # chat-native items: the conversation before the answer


@dataclass
class Task:
    name: str
    kind: str                                   # one of KINDS
    items: list[Item]
    template: str = "{question}"                # str.format over item.fields (+ {options})
    choice_style: str = "texts"                 # multiple_choice: continuation is " A" (letters) or " <text>"
    fewshot_pool: list[Item] = field(default_factory=list)  # shots come from here (else from the other items)
    metrics: tuple[str, ...] = ()               # per-item metrics to report (default by kind)
    primary: str = ""                           # the metric summaries and gates use
    max_new_tokens: int = 64
    stop: tuple[str, ...] = ("\n\n",)           # plain-style generation stops here
    labels: tuple[str, ...] = ()                # label extraction (PubMedQA: yes/no/maybe)
    tolerance: float = 0.05                     # numeric answers: relative tolerance (SciBench uses 5%)
    max_answer_tokens: int = 256                # nll: reference answers are cut to this many tokens
    language: str = "en"
    sources: tuple[str, ...] = ()               # shared datasets read (licences show in the report)
    description: str = ""
    keep_output: bool = True                    # false: the report keeps scores, not the generated text

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"task {self.name}: kind must be one of {KINDS}, not {self.kind!r}")
        self.primary = self.primary or DEFAULT_PRIMARY[self.kind]
        if not self.metrics:
            self.metrics = default_metrics(self)

    @property
    def higher_is_better(self) -> bool:
        return self.primary not in LOWER_IS_BETTER


def default_metrics(task: Task) -> tuple[str, ...]:
    if task.kind == "multiple_choice":
        return ("acc", "acc_norm", "acc_bytes", "gold_prob")
    if task.kind == "nll":
        return ("nll",)
    if task.kind == "judge":
        return ("judge_score",)
    if task.primary in SAFETY_METRICS:
        return (task.primary, "refused")
    metrics = ["exact_match", "f1", "rouge_l"]
    if task.labels:
        metrics[:0] = ["label_acc", "format_ok"]
    if task.primary == "numeric_acc":
        metrics.insert(0, "numeric_acc")
    return tuple(metrics)


def render_options(choices: tuple[str, ...]) -> str:
    return "\n".join(f"{LETTERS[i]}. {text}" for i, text in enumerate(choices))


def render(task: Task, item: Item) -> str:
    """The question as the model sees it (without shots and without the answer)."""
    values = dict(item.fields)
    if item.choices or "options" not in values:  # {options} is the rendered choice list (it wins over a column)
        values["options"] = render_options(item.choices)
    return task.template.format(**values)


def answer_text(task: Task, item: Item) -> str:
    """The gold answer as it would be written after the prompt (used for few-shot examples)."""
    if task.kind == "multiple_choice":
        return LETTERS[item.gold] if task.choice_style == "letters" else item.choices[item.gold]
    return item.reference or ""


def choice_continuations(task: Task, item: Item) -> list[str]:
    """The strings whose log-likelihood is compared (lm-eval's doc_to_choice, before the target delimiter)."""
    if task.choice_style == "letters":
        return [LETTERS[i] for i in range(len(item.choices))]
    return list(item.choices)


def stable_rank(seed: int, *parts) -> str:
    """A reproducible sort key: the same seed and ids give the same order on every machine."""
    return hashlib.sha256(":".join(str(p) for p in (seed, *parts)).encode()).hexdigest()


def sample_items(items: list[Item], limit: int | None, seed: int, task_name: str) -> list[Item]:
    """At most `limit` items chosen by a seeded hash of their ids, kept in their original order."""
    if not limit or len(items) <= limit:
        return list(items)
    keep = set(sorted(range(len(items)), key=lambda i: stable_rank(seed, task_name, items[i].id))[:limit])
    return [item for i, item in enumerate(items) if i in keep]


def letter_index(label: str, n: int) -> int:
    """'B' / 'b' / '(B)' → 1, checked against the number of options."""
    letter = label.strip().strip("()").strip().upper()[:1]
    index = LETTERS.find(letter)
    if index < 0 or index >= n:
        raise ValueError(f"answer {label!r} is not one of the {n} option letters")
    return index
