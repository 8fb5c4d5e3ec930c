"""Which shared datasets may be trained on. Eval-only sets (see ../shared/data/README.md) are refused by name."""

from __future__ import annotations

from pathlib import Path

from domainlm.errors import DataError

# Benchmarks: never trained on. ChemBench carries a canary string; the test splits of MMLU/CMMLU, FormationEval
# and PubMedQA are evaluation data. The MCQ/QA benchmarks below are scored by the harness and must stay unseen.
EVAL_ONLY = frozenset({
    "chembench", "formationeval_oil_gas", "pubmedqa", "mmlu_hendrycks_2020-09", "cmmlu",
    "medqa_usmle_4opt", "medmcqa_medagents", "mmlu_medical_medagents", "cmb_clin", "scibench_chemistry",
    "agieval_gaokao_chemistry", "gaokao_bench_chemistry", "northseapqa_oil_gas", "atmossci_bench", "geobench_k2",
    "safetybench_zh", "xstest",
})

# Datasets with a trainable part and an eval-only part: dataset → its eval-only top folders.
EVAL_ONLY_SPLITS = {"medsafetybench": ("test",)}   # MedSafety-Eval; its train/ split is safety SFT data

# Licences that restrict use; shown in every data card and model filing record that touches them.
RESTRICTED_LICENCES = {
    "cmmlu": "CC BY-NC-SA 4.0 (non-commercial)",
    "geobench_k2": "non-commercial use only",
    "huatuo_llama_med": "academic research only, no commercial use",
    "chatdoctor_genmedgpt5k": "research only, no clinical or commercial use",
}


def dataset_of(path: str | Path, data_root: Path | None = None) -> str | None:
    """The shared dataset a file belongs to (its first folder under the data root), or None."""
    parts = _shared_parts(path, data_root)
    return parts[0] if parts else None


def _shared_parts(path: str | Path, data_root: Path | None = None) -> tuple[str, ...]:
    """The file's path parts under the shared data root (dataset first), or () outside it."""
    path = Path(path).resolve()
    roots = [data_root.resolve()] if data_root else []
    try:
        from domainlm.paths import data_root as shared_root

        roots.append(shared_root().resolve())
    except DataError:
        pass
    for root in roots:
        if path.is_relative_to(root):
            return path.relative_to(root).parts
    return ()


def eval_only_split(dataset: str | None, relative: str | Path) -> bool:
    """True when `relative` (a path or glob inside `dataset`) lies in one of the dataset's eval-only folders."""
    first = Path(relative).parts[0] if Path(relative).parts else ""
    return first in EVAL_ONLY_SPLITS.get(dataset or "", ())


def assert_trainable(name_or_path: str | Path) -> None:
    """Raise DataError when a training source is an eval-only dataset (by name or by its file's location)."""
    name = str(name_or_path)
    parts = () if name in EVAL_ONLY else _shared_parts(name_or_path)
    dataset = name if name in EVAL_ONLY else (parts[0] if parts else None)
    if dataset in EVAL_ONLY:
        raise DataError(
            f"'{name}' belongs to the eval-only dataset '{dataset}' (../shared/data/README.md): "
            "it is never used for training. Remove it from the training data sources."
        )
    if len(parts) > 1 and eval_only_split(dataset, Path(*parts[1:])):
        raise DataError(
            f"'{name}' is in the eval-only part ({parts[1]}/) of dataset '{dataset}' (../shared/data/README.md): "
            "it is never used for training. Name the dataset's training split only."
        )
