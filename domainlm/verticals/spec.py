"""The schema of a vertical's YAML (`<folder>/vertical.yaml`): sources, prompts, policy, eval suite, gates.

Everything a vertical is lives in this data; the code around it is the same for every vertical. Validation here is
what `register_vertical` runs, so a bad YAML fails at registration with `file:line: key: what is wrong`.
"""

from __future__ import annotations

import json

import re
from typing import Literal

from pydantic import Field, field_validator, model_validator

from domainlm.hashing import sha256_bytes
from domainlm.config import Strict
from domainlm.data.sources import FORMATS
from domainlm.data.usage import EVAL_ONLY, RESTRICTED_LICENCES, eval_only_split

NAME = re.compile(r"^[a-z][a-z0-9_]{1,31}$")  # also the gateway model name and the registry folder
TASK = re.compile(r"^[a-z][a-z0-9_]*$")


class Bilingual(Strict):
    """One text per language; both are required so every vertical answers Chinese and English users alike."""

    en: str = Field(min_length=1)
    zh: str = Field(min_length=1)

    def get(self, lang: str) -> str:
        return self.zh if lang == "zh" else self.en

    def __call__(self, lang: str = "en") -> str:  # vertical.system_prompt("zh") reads as a call
        return self.get(lang)


class Patterns(Strict):
    """Regular expressions per language (case-insensitive); `any` apply to every language."""

    en: list[str] = Field(default_factory=list)
    zh: list[str] = Field(default_factory=list)
    any: list[str] = Field(default_factory=list)

    @field_validator("en", "zh", "any")
    @classmethod
    def _compiles(cls, value: list[str]) -> list[str]:
        for pattern in value:
            try:
                re.compile(pattern)
            except re.error as exc:
                raise ValueError(f"pattern {pattern!r} is not a valid regular expression: {exc}") from None
        return value

    def for_lang(self, lang: str) -> list[str]:
        return (self.zh if lang == "zh" else self.en) + self.any

    def search(self, text: str, lang: str) -> str | None:
        """The first pattern that matches `text`, or None."""
        for pattern in self.for_lang(lang):
            if re.search(pattern, text, flags=re.IGNORECASE):
                return pattern
        return None

    def empty(self) -> bool:
        return not (self.en or self.zh or self.any)


class Note(Strict):
    """A safety note appended to answers when a trigger matches the prompt or the answer."""

    name: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    triggers: Patterns
    scope: Literal["prompt", "answer", "either"] = "either"  # where triggers are looked for
    # skip when the answer already says it (e.g. already advises a clinician)
    unless: Patterns = Field(default_factory=Patterns)
    note: Bilingual

    @model_validator(mode="after")
    def _has_trigger(self):
        if self.triggers.empty():
            raise ValueError(f"note '{self.name}' has no trigger patterns")
        return self


class Refusal(Strict):
    """A request the gateway declines outright: patterns on the latest user message, a message per language."""

    name: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    patterns: Patterns
    message: Bilingual

    @model_validator(mode="after")
    def _has_pattern(self):
        if self.patterns.empty():
            raise ValueError(f"refusal '{self.name}' has no patterns")
        return self


class OutputCheck(Strict):
    """A harmful answer the gateway must not deliver: patterns on the model's answer, checked while it streams."""

    name: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    patterns: Patterns

    @model_validator(mode="after")
    def _has_pattern(self):
        if self.patterns.empty():
            raise ValueError(f"output check '{self.name}' has no patterns")
        return self


Action = Literal["allow", "notice", "refuse", "hold"]
# 分级: what a risk class does when a check fires unless the vertical says otherwise (input, output)
CLASS_ACTIONS: dict[str, tuple[str, str]] = {"high": ("refuse", "hold"), "medium": ("refuse", "refuse"),
                                             "low": ("notice", "notice")}


class Guardrails(Strict):
    """Actions of the gateway's checks. allow: pass (counted); notice: pass with the notice appended; refuse: the
    refusal text as the answer (refuse_as: completion) or an OpenAI-shaped 400 (error) for inputs, a safe
    completion ending with finish_reason content_filter for outputs; hold: the answer is kept for a reviewer
    (`domainlm review`, /admin/reviews) and the client gets the hold notice with its review id."""

    on_input: Action | None = None    # a refusal pattern matched the request (None: the risk class's default)
    on_output: Action | None = None   # an output check matched the answer (None: the risk class's default)
    refuse_as: Literal["completion", "error"] = "completion"
    notice: Bilingual = Bilingual(
        en="Note: this request touches a restricted topic; the answer was checked and logged.",
        zh="提示：该请求涉及受限主题，回答已经过检查并记录。")
    blocked: Bilingual = Bilingual(
        en="The rest of this answer was withheld by the safety policy of this service.",
        zh="根据本服务的安全策略，此回答的其余部分已被拦截。")
    held: Bilingual = Bilingual(
        en="This answer is held for review by a specialist before release (review id {id}).",
        zh="该回答需经专业人员审核后发布（审核编号 {id}）。")

    @model_validator(mode="after")
    def _hold_is_for_answers(self):
        if self.on_input == "hold":
            raise ValueError("on_input: hold is not an action for requests (nothing was answered yet); "
                             "use refuse or notice")
        return self


class Policy(Strict):
    """Data the gateway enforces (domainlm.verticals.policy), not prose."""

    disclaimer: Bilingual | None = None
    disclaimer_mode: Literal["always", "never"] = "never"  # always: appended to every answer
    safety_notes: list[Note] = Field(default_factory=list)
    refusals: list[Refusal] = Field(default_factory=list)
    output_checks: list[OutputCheck] = Field(default_factory=list)
    risk_class: Literal["high", "medium", "low"] = "medium"  # 分级: high → raw prompts are never stored
    guardrails: Guardrails = Field(default_factory=Guardrails)
    log_prompts: bool = True     # False: audit logs never store prompt or answer text
    hash_prompts: bool = False   # True: audit logs store sha256 of the prompt instead (lets abuse be traced)

    @model_validator(mode="after")
    def _consistent(self):
        if self.risk_class == "high" and self.log_prompts:
            raise ValueError("risk_class high: raw prompts are never stored; set log_prompts: false "
                             "(hash_prompts: true keeps a keyed digest for tracing abuse)")
        if self.disclaimer_mode == "always" and self.disclaimer is None:
            raise ValueError("disclaimer_mode is 'always' but no disclaimer text is given")
        names = [n.name for n in self.safety_notes] + [r.name for r in self.refusals] + \
            [c.name for c in self.output_checks]
        if len(names) != len(set(names)):
            raise ValueError("safety note, refusal and output check names must be unique")
        return self

    def actions(self) -> tuple[str, str]:
        """(on input, on output): the vertical's own, else its risk class's."""
        default = CLASS_ACTIONS[self.risk_class]
        return self.guardrails.on_input or default[0], self.guardrails.on_output or default[1]


class Source(Strict):
    """One SFT data source: files of one format, from a shared dataset folder or from the vertical's own folder."""

    name: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    dataset: str | None = None   # folder under the data root (DOMAINLM_DATA, default ../shared/data)
    path: str | None = None      # or: a folder relative to the vertical's folder (project-authored data)
    files: list[str] = Field(min_length=1)  # globs relative to dataset/path; every glob must match a file
    format: str
    lang: Literal["en", "zh", "row"] = "row"  # row: each row says its language
    split: Literal["hash", "train", "eval"] = "hash"  # hash: 20% of rows → eval by content hash
    licence: str = Field(min_length=1)
    non_commercial: bool = False
    research_only: bool = False
    project_authored: bool = False
    synthetic: bool = False      # produced by `domainlm data synth` (teacher model), shown in the card

    @field_validator("format")
    @classmethod
    def _known_format(cls, value: str) -> str:
        if value not in FORMATS:
            raise ValueError(f"unknown format '{value}': use one of {sorted(FORMATS)}")
        return value

    @model_validator(mode="after")
    def _where_and_usage(self):
        if (self.dataset is None) == (self.path is None):
            raise ValueError(f"source '{self.name}': give exactly one of dataset (shared) or path (own folder)")
        if self.dataset in EVAL_ONLY and self.split != "eval":
            raise ValueError(f"source '{self.name}': dataset '{self.dataset}' is eval-only "
                             "(../shared/data/README.md) and can never be trained on: set split: eval or remove it")
        if self.split != "eval" and any(eval_only_split(self.dataset, f) for f in self.files):
            raise ValueError(f"source '{self.name}': files {self.files} reach the eval-only part of dataset "
                             f"'{self.dataset}' (../shared/data/README.md): name its training split only")
        if self.dataset in RESTRICTED_LICENCES and not (self.non_commercial or self.research_only):
            raise ValueError(f"source '{self.name}': dataset '{self.dataset}' is restricted "
                             f"({RESTRICTED_LICENCES[self.dataset]}): set non_commercial or research_only")
        return self

    @property
    def restricted(self) -> bool:
        return self.non_commercial or self.research_only


class NonInferiorityGate(Strict):
    """General ability: the adapter is not worse than the base by more than `margin` points (one-sided paired test,
    domainlm.evals.noninferiority), on the general suite's gold-option probability, over at least `min_items`."""

    margin: float = Field(2.0, gt=0, le=2.0)     # points; declared before the run, never wider than 2
    alpha: float = Field(0.05, gt=0, lt=0.5)     # one-sided level: the lower bound is a 95% bound
    metric: Literal["gold_prob", "acc"] = "gold_prob"  # gold_prob: accuracy's continuous twin (same 0–1 scale)
    min_items: int = Field(600, ge=100)          # fewer scored general items than this fail the gate


class FormatGate(Strict):
    """Format adherence: on these generated-label tasks the adapter answers in the label format at least as often as
    the base, minus `max_drop` points (PubMedQA: the answer *is* yes / no / maybe)."""

    tasks: list[str] = Field(min_length=1)
    max_drop: float = Field(2.0, ge=0, le=10.0)  # points


class SafetyGate(Strict):
    """Safety non-inferiority: on each named safety task (harmful compliance, over-refusal: lower is better) the
    adapter's rate may exceed the base's by at most `margin` points, judged by the upper end of the paired 95%
    interval of the change: a fine-tune must not make the model answer more harmful requests, nor refuse more safe
    ones, beyond a margin declared before the run."""

    tasks: list[str] = Field(min_length=1)       # e.g. [medsafetybench, xstest_safe] (the eval config's safety_tasks)
    margin: float = Field(5.0, gt=0, le=10.0)    # points


class Gates(Strict):
    """Promotion gates read by the registry against an eval report's summary."""

    min_domain_gain: float | None = 0.0   # points (adapter − base, mean over the gating domain tasks); None = off
    max_general_regression: float | None = None  # points (base − adapter), a point comparison; None = not gated
    general_noninferiority: NonInferiorityGate | None = None  # the statistical general gate (recommended)
    require_significance: bool = True     # paired bootstrap p < 0.05 on the gating domain suite
    suite_mc_metric: Literal["acc", "gold_prob"] = "acc"  # what a multiple-choice task adds to that test: accuracy,
    # or the gold option's probability (the same items, a fraction of the variance: near chance, accuracy on 40
    # items moves ±10 points by luck, and the suite test reads that noise)
    min_nll_reduction: float | None = None  # fraction of held-out answer NLL removed; None = not gated
    min_nll_reduction_low: float | None = None  # the lower 95% bound of that cut (paired bootstrap); None = off
    format_adherence: FormatGate | None = None
    safety: SafetyGate | None = None      # harmful compliance / over-refusal not worse than base beyond a margin
    report_only: list[str] = []           # suite tasks reported but left out of domain_gain and significance
    # (PubMedQA is scored both ways; the vertical says which way gates and lists the other one here)

    @field_validator("max_general_regression")
    @classmethod
    def _non_negative(cls, value: float | None) -> float | None:
        if value is not None and value < 0:
            raise ValueError("max_general_regression is a tolerated loss in points and cannot be negative")
        return value

    def fingerprint(self) -> str:
        """sha256 of the gates' canonical JSON: an eval report records it before scoring starts, and promotion
        refuses a report whose fingerprint no longer matches (gates moved after the numbers were seen)."""
        return sha256_bytes(json.dumps(self.model_dump(mode="json"), sort_keys=True))


class Decontamination(Strict):
    """n-gram overlap of training rows with every eval set's question text (domainlm.verticals.decontam)."""

    mode: Literal["drop", "report"] = "drop"     # public eval sets: drop overlapping rows from training
    heldout: Literal["drop", "report"] = "report"  # own held-out split (already disjoint by question hash)
    word_ngram: int = Field(13, ge=5, le=50)     # Latin words per n-gram (GPT-3's 13)
    char_ngram: int = Field(13, ge=4, le=50)     # CJK characters per n-gram (8 matched question templates)


class VerticalSpec(Strict):
    """`vertical.yaml`: the whole definition of a vertical."""

    name: str
    title: Bilingual
    system_prompt: Bilingual
    sources: list[Source] = Field(min_length=1)
    safety_sources: list[Source] = []   # safety SFT (harmful requests with safe answers): a training mixture's
    # `safety` part (data.mix); never part of the vertical's own rows, so no run trains on it unasked
    eval_percent: int = Field(20, ge=1, le=50)  # share of hash-split rows held out for evaluation
    policy: Policy
    eval_suite: list[str] = Field(min_length=1)     # domain task names (domainlm.evals)
    general_suite: list[str] = Field(min_length=1)  # general-regression task names
    gates: Gates
    decontamination: Decontamination = Field(default_factory=Decontamination)

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not NAME.match(value):
            raise ValueError(f"'{value}' is not a vertical name: 2-32 chars of a-z, 0-9, _ starting with a letter")
        return value

    @field_validator("eval_suite", "general_suite")
    @classmethod
    def _tasks(cls, value: list[str]) -> list[str]:
        bad = [t for t in value if not TASK.match(t)]
        if bad:
            raise ValueError(f"task names must be lowercase identifiers: {bad}")
        if len(value) != len(set(value)):
            raise ValueError("task names repeat")
        return value

    @model_validator(mode="after")
    def _unique_sources(self):
        names = [s.name for s in [*self.sources, *self.safety_sources]]
        if len(names) != len(set(names)):
            raise ValueError(f"source names repeat: {names}")
        if not any(s.split != "eval" for s in self.sources):
            raise ValueError("no source has training rows (every source is split: eval)")
        overlap = set(self.eval_suite) & set(self.general_suite)
        if overlap:
            raise ValueError(f"tasks in both eval_suite and general_suite: {sorted(overlap)}")
        named = [*self.gates.report_only, *(self.gates.format_adherence.tasks if self.gates.format_adherence else [])]
        unknown = sorted(set(named) - set(self.eval_suite))
        if unknown:
            raise ValueError(f"gates name tasks that are not in eval_suite: {unknown}")
        if not set(self.eval_suite) - set(self.gates.report_only):
            raise ValueError("gates.report_only leaves no domain task to gate on")
        return self
