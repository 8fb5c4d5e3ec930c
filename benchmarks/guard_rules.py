"""The gateway's rule checks alone, measured on items they were never written from (no model in the loop).

    python benchmarks/guard_rules.py [--json OUT]

Input rules (each vertical's refusal patterns, what the gateway refuses without calling the model):
  recall      share of harmful requests flagged: MedSafetyBench test (900, medical), the authored petrochem / marine
              harmful sets (156 each, zh + en; written after the rules), XSTest unsafe (200, general)
  false block share of safe requests flagged: XSTest safe (250 look-alikes), the authored look-alike sets (156 each)
              and the vertical's held-out questions
Output checks on answers: false blocks on every training and held-out answer of all three verticals.
Cost: microseconds per check, median of the whole set. Rates come with Wilson 95% intervals. Prompts are never
printed (the harmful sets are harmful by design): counts only.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from domainlm.data.benchmarks import medsafetybench, xstest  # noqa: E402
from domainlm.evals.report import wilson  # noqa: E402
from domainlm.evals.tasks.safety import AUTHORED, authored_prompts  # noqa: E402
from domainlm.verticals import get_vertical  # noqa: E402
from domainlm.verticals.guard import output_rule  # noqa: E402
from domainlm.verticals.policy import refusal_rule  # noqa: E402

VERTICALS = ("medical", "petrochem", "marine")


def _user(row: dict) -> str:
    return next(m["content"] for m in row["messages"] if m["role"] == "user")


def _answer(row: dict) -> str:
    return "\n".join(m["content"] for m in row["messages"] if m["role"] == "assistant")


def flagged(check, texts: list[str]) -> tuple[list[int], float]:
    """(1/0 per text, median µs per check)."""
    hits, costs = [], []
    for text in texts:
        started = time.perf_counter()
        hits.append(int(check(text) is not None))
        costs.append((time.perf_counter() - started) * 1e6)
    return hits, statistics.median(costs) if costs else 0.0


def line(name: str, hits: list[int], us: float) -> dict:
    w = wilson(hits)
    print(f"  {name:<34} {sum(hits):>5}/{len(hits):<5} {100 * w['rate']:6.1f}% "
          f"[{100 * w['ci_low']:.1f}, {100 * w['ci_high']:.1f}]   {us:7.1f} µs")
    return {"flagged": sum(hits), **w, "median_us": us}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", type=Path, help="write the figures here as JSON")
    args = parser.parse_args()
    xs = xstest.rows()
    harmful = {"medsafetybench_test": [r["request"] for r in medsafetybench.rows()],
               "xstest_unsafe": [r["prompt"] for r in xs if r["label"] == "unsafe"]}
    safe = {"xstest_safe": [r["prompt"] for r in xs if r["label"] == "safe"]}
    answers = [_answer(r) for v in VERTICALS for split in ("train", "eval") for r in get_vertical(v).sft_rows(split)]
    out: dict = {}
    for vertical in VERTICALS:
        policy = get_vertical(vertical).policy
        print(f"{vertical} (risk class {policy.risk_class}; actions on input/output: {'/'.join(policy.actions())})")
        out[vertical] = figures = {}

        def check_input(text: str, vertical: str = vertical):
            return refusal_rule(vertical, [{"role": "user", "content": text}])

        own_harmful, own_safe = {}, {}
        if vertical in AUTHORED:
            own_harmful[f"{vertical}_harmful"] = [i.fields["question"] for i in authored_prompts(vertical, "harmful")]
            own_safe[f"{vertical}_lookalike"] = [i.fields["question"] for i in authored_prompts(vertical, "safe")]
        print("  input rules: recall on harmful requests")
        for name, texts in {**own_harmful, **harmful}.items():
            if name == "medsafetybench_test" and vertical != "medical":
                continue
            figures[f"recall/{name}"] = line(name, *flagged(check_input, texts))
        print("  input rules: false blocks on safe requests")
        own = [_user(r) for r in get_vertical(vertical).sft_rows("eval")]
        for name, texts in {**own_safe, **safe, f"{vertical}_heldout_questions": own}.items():
            figures[f"false_block/{name}"] = line(name, *flagged(check_input, texts))
        print("  output checks: false blocks on the three verticals' answers")
        figures["output_false_block/answers"] = line("all training + held-out answers",
                                                     *flagged(lambda t, p=policy: output_rule(p, t), answers))
    if args.json:
        args.json.write_text(json.dumps(out, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
