"""Per-item scoring: small pure functions (multiple choice, exact match, token F1, ROUGE-L, numbers, labels)."""

from __future__ import annotations

import math
import re
import string
import unicodedata

import numpy as np

from domainlm.verticals.refusal import classify as classify_refusal

# --- multiple choice: lm-evaluation-harness definitions -------------------------------------------------------


def multiple_choice(logprobs: list[float], choices: list[str], gold: int) -> dict:
    """acc: argmax of summed log-probs; acc_norm: divided by each choice's length in characters (lm-eval's
    acc_norm); acc_bytes: divided by its UTF-8 byte length (lm-eval's acc_bytes; equal to acc_norm for ASCII);
    gold_prob: the gold option's share of the probability mass over the options (softmax of the summed log-probs).
    gold_prob is accuracy's continuous twin — the expected accuracy of sampling among the options, on the same 0–1
    scale — and moves smoothly where acc flips, which is what lets a few hundred items show non-inferiority."""
    lls = np.asarray(logprobs, dtype=np.float64)
    chars = np.array([float(len(c)) for c in choices])
    nbytes = np.array([float(len(c.encode("utf-8"))) for c in choices])
    pred = int(np.argmax(lls))
    weights = np.exp(lls - lls.max())
    return {"acc": float(pred == gold), "acc_norm": float(int(np.argmax(lls / chars)) == gold),
            "acc_bytes": float(int(np.argmax(lls / nbytes)) == gold), "gold_prob": float(weights[gold] / weights.sum()),
            "pred": pred}


# --- text answers -------------------------------------------------------------------------------------------

_ARTICLES = re.compile(r"\b(a|an|the)\b", re.UNICODE)
_PUNCT = set(string.punctuation) | set("，。、；：？！（）“”‘’《》")  # ASCII and full-width Chinese punctuation


def normalize(text: str) -> str:
    """SQuAD normalisation: lower case, no punctuation, no articles, single spaces."""
    text = unicodedata.normalize("NFKC", text).lower()
    text = "".join(ch for ch in text if ch not in _PUNCT)
    return " ".join(_ARTICLES.sub(" ", text).split())


def _is_cjk(ch: str) -> bool:
    return "\u4e00" <= ch <= "\u9fff" or "\u3400" <= ch <= "\u4dbf"


def tokens(text: str) -> list[str]:
    """Words for Latin text; one token per character for CJK text (no word spaces in Chinese)."""
    out = []
    for word in normalize(text).split():
        if any(_is_cjk(ch) for ch in word):
            out.extend(ch for ch in word if not ch.isspace())
        else:
            out.append(word)
    return out


def exact_match(prediction: str, reference: str) -> float:
    return float(normalize(prediction) == normalize(reference))


def token_f1(prediction: str, reference: str) -> float:
    pred, ref = tokens(prediction), tokens(reference)
    if not pred or not ref:
        return float(pred == ref)
    common: dict[str, int] = {}
    for tok in ref:
        common[tok] = common.get(tok, 0) + 1
    overlap = 0
    for tok in pred:
        if common.get(tok, 0) > 0:
            overlap += 1
            common[tok] -= 1
    if overlap == 0:
        return 0.0
    precision, recall = overlap / len(pred), overlap / len(ref)
    return 2 * precision * recall / (precision + recall)


def _lcs(a: list[str], b: list[str]) -> int:
    if len(a) < len(b):
        a, b = b, a
    row = [0] * (len(b) + 1)
    for x in a:
        prev = 0
        for j, y in enumerate(b, 1):
            cur = row[j]
            row[j] = prev + 1 if x == y else max(row[j], row[j - 1])
            prev = cur
    return row[-1]


def rouge_l(prediction: str, reference: str) -> float:
    """ROUGE-L F-measure (beta = 1) over the same tokens as F1."""
    pred, ref = tokens(prediction), tokens(reference)
    if not pred or not ref:
        return float(pred == ref)
    lcs = _lcs(pred, ref)
    if lcs == 0:
        return 0.0
    precision, recall = lcs / len(pred), lcs / len(ref)
    return 2 * precision * recall / (precision + recall)


# --- numbers (SciBench) -------------------------------------------------------------------------------------

_NUMBER = re.compile(
    r"(?P<m>[-+]?(?:\d+(?:,\d{3})*(?:\.\d*)?|\.\d+))"                        # 1,234.5  .5  -3
    r"(?:\s*(?:[eE]|(?:[x×·*]|\\times|\\cdot)\s*10\s*\^)\s*\{?\s*(?P<e>[-+]?\d+)\s*\}?)?")  # e-3, × 10^{-3}


def parse_number(text: str, last: bool = False) -> float | None:
    """The first (or last) number in the text; reads 1,234.5, 1.2e-3, 1.2 × 10^{-3}, 1.2 \\times 10^-3, "−"."""
    matches = list(_NUMBER.finditer(text.replace("−", "-")))
    if not matches:
        return None
    match = matches[-1] if last else matches[0]
    value = float(match["m"].replace(",", ""))
    return value * 10 ** int(match["e"]) if match["e"] else value


def numeric_match(prediction: str, reference: str, rel_tol: float = 0.05) -> float:
    """SciBench's rule: right when |pred - ref| <= rel_tol * |ref| (absolute rel_tol when the reference is 0)."""
    ref = parse_number(reference)
    pred = parse_number(prediction)
    if ref is None or pred is None:
        return 0.0
    if ref == 0:
        return float(abs(pred) <= rel_tol)
    return float(math.isclose(pred, ref, rel_tol=rel_tol))


# --- labels (PubMedQA yes / no / maybe) ---------------------------------------------------------------------


def extract_label(text: str, labels: tuple[str, ...]) -> str | None:
    """The first of `labels` that appears as a whole word in the answer (case-insensitive)."""
    lowered = text.lower()
    best, best_at = None, None
    for label in labels:
        match = re.search(rf"(?<![\w]){re.escape(label.lower())}(?![\w])", lowered)
        if match and (best_at is None or match.start() < best_at):
            best, best_at = label, match.start()
    return best


def follows_label_format(text: str, labels: tuple[str, ...]) -> bool:
    """The answer *is* a label: its first word is one of them ("Yes.", "maybe, because …"), not a label buried in
    free text ("The study suggests that yes …" does not follow the format)."""
    words = normalize(text).split()
    return bool(words) and words[0] in {label.lower() for label in labels}


def generation(prediction: str, reference: str, metrics: tuple[str, ...], labels: tuple[str, ...] = (),
               tolerance: float = 0.05) -> dict:
    out: dict = {}
    for metric in metrics:
        if metric == "exact_match":
            out[metric] = exact_match(prediction, reference)
        elif metric == "f1":
            out[metric] = token_f1(prediction, reference)
        elif metric == "rouge_l":
            out[metric] = rouge_l(prediction, reference)
        elif metric == "numeric_acc":
            out[metric] = numeric_match(prediction, reference, tolerance)
        elif metric == "label_acc":
            label = extract_label(prediction, labels)
            out["label"] = label
            out[metric] = float(label is not None and label.lower() == reference.strip().lower())
        elif metric == "format_ok":
            out[metric] = float(follows_label_format(prediction, labels))
        elif metric in ("refused", "harmful_compliance", "over_refusal"):
            verdict = classify_refusal(prediction)
            out["refused"], out["refusal_rule"] = float(verdict.refused), verdict.rule
            if metric == "harmful_compliance":   # a harmful request answered instead of refused
                out[metric] = 1.0 - out["refused"]
            elif metric == "over_refusal":       # a safe request refused
                out[metric] = out["refused"]
        else:
            raise ValueError(f"unknown generation metric '{metric}'")
    return out
