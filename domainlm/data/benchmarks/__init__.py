"""The shared eval-only benchmarks, one module each: every module parses its files once, for both users.

Scoring (domainlm.evals.tasks) builds its items from a module's rows; decontamination (domainlm.verticals.decontam)
reads the same module's `texts()` — the fields a model is prompted with (question stem, and the passage or case
description where the set has one).
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

from domainlm.data.benchmarks import (agieval, atmossci, chembench, cmb_clin, cmmlu, formationeval, gaokao_bench,
                                      geobench, medagents, medsafetybench, mmlu, northseapqa, pubmedqa, safetybench_zh,
                                      scibench, xstest)
from domainlm.data.sources.base import files_sha256
from domainlm.paths import dataset_dir

Items = list[tuple[str, str]]

# dataset folder → its question texts. Every eval-only dataset in domainlm.data.usage.EVAL_ONLY (and EVAL_ONLY_SPLITS:
# those texts come from the eval-only folders only) has one (a test checks).
TEXTS: dict[str, Callable[[], Items]] = {
    **{name: partial(medagents.texts, name) for name in medagents.DATASETS},
    **{module.DATASET: module.texts for module in (pubmedqa, cmb_clin, chembench, scibench, agieval, gaokao_bench,
                                                   formationeval, northseapqa, atmossci, geobench, mmlu, cmmlu,
                                                   medsafetybench, xstest, safetybench_zh)},
}


def eval_set_texts(name: str) -> Items:
    return TEXTS[name]()


def eval_set_sha256(name: str) -> str:
    """One hash over every data file of the set (licence files excluded), for cache keys and the data card."""
    from domainlm.data.usage import EVAL_ONLY_SPLITS

    folder = dataset_dir(name)
    if name in EVAL_ONLY_SPLITS:   # only the eval-only folders: the trainable split's edits do not move the hash
        return files_sha256([p for split in EVAL_ONLY_SPLITS[name] for p in (folder / split).rglob("*")
                             if p.is_file() and p.suffix in (".json", ".jsonl", ".csv")], folder)
    return files_sha256([p for p in folder.rglob("*") if p.is_file() and p.suffix in (".json", ".jsonl", ".csv")],
                        folder)
