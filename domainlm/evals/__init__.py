"""Evaluation harness: tasks, scorers, model backends (hf / vllm / openai endpoint), results cache, reports.

    from domainlm.evals import run_eval
    report = run_eval("configs/eval/medical.yaml", model="medical@3")   # base and medical@3 on the same items
"""

from __future__ import annotations


def run_eval(*args, **kwargs) -> dict:
    """See domainlm.evals.runner.run_eval (imported lazily: `import domainlm.evals` stays light)."""
    from domainlm.evals.runner import run_eval as _run

    return _run(*args, **kwargs)


__all__ = ["run_eval"]
