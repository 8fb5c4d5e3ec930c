"""The question text of every eval-only set in the shared data, for decontamination (not for scoring).

Each reader returns [(item id, text)] from the raw files at a simple level: the fields a model is prompted with
(question stem, and the passage or case description where the set has one). Scoring lives in domainlm.evals.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Callable
from pathlib import Path

from domainlm.data.sources.base import files_sha256
from domainlm.paths import dataset_dir

Items = list[tuple[str, str]]


def _jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def _json(path: Path):
    return json.loads(path.read_text(encoding="utf-8"))


def _csv_column(path: Path, column: int | str, header: bool) -> list[str]:
    with open(path, encoding="utf-8", newline="") as handle:
        rows = list(csv.reader(handle))
    if header:
        names, rows = rows[0], rows[1:]
        column = names.index(column) if isinstance(column, str) else column
    return [row[column] for row in rows if len(row) > column]


def pubmedqa(d: Path) -> Items:
    return [(pid, item["QUESTION"]) for pid, item in _json(d / "ori_pqal.json").items()]


def medagents_jsonl(d: Path) -> Items:
    return [(f"test.jsonl#{i}", row["question"]) for i, row in enumerate(_jsonl(d / "test.jsonl"))]


def cmb_clin(d: Path) -> Items:
    items = []
    for case in _json(d / "CMB-Clin-qa.json"):
        items.append((f"case{case['id']}", case.get("description", "")))
        items += [(f"case{case['id']}.q{j}", qa["question"]) for j, qa in enumerate(case.get("QA_pairs", []))]
    return items


def chembench(d: Path) -> Items:
    items = []
    for path in sorted(d.glob("*.jsonl")):
        for row in _jsonl(path):
            items += [(f"{row.get('uuid', row.get('name'))}.{j}", ex["input"]) for j, ex in enumerate(row["examples"])]
    return items


def scibench(d: Path) -> Items:
    return [(f"{p.stem}#{i}", row["problem_text"]) for p in sorted(d.glob("*.json")) for i, row in enumerate(_json(p))]


def agieval(d: Path) -> Items:
    return [(f"{i}", "\n".join(filter(None, [row.get("passage"), row["question"]])))
            for i, row in enumerate(_jsonl(d / "gaokao-chemistry.jsonl"))]


def gaokao_bench(d: Path) -> Items:
    return [(f"{p.stem}#{i}", row["question"]) for p in sorted(d.glob("*.json"))
            for i, row in enumerate(_json(p)["example"])]


def formationeval(d: Path) -> Items:
    return [(row["id"], row["question"]) for row in _json(d / "formationeval_v0.1.json")]


def northseapqa(d: Path) -> Items:
    items = []
    for doc in _json(d / "test.json")["data"]:
        for k, para in enumerate(doc["paragraphs"]):
            items.append((f"{doc['document']}.p{k}", para["context"]))
            items += [(qa["id"], qa["question"]) for qa in para["qas"]]
    return items


def atmossci(d: Path) -> Items:
    return [(row["id"], row["problem"]) for p in sorted(d.glob("*.jsonl")) for row in _jsonl(p)]


def geobench(d: Path) -> Items:
    items = [(row["id"], row["question"]["stem"]) for row in _json(d / "geobench_apstudy.json")]
    for kind, block in _json(d / "geobench_npee.json").items():
        items += [(f"npee.{kind}#{i}", str(q)) for i, q in enumerate(block["question"])]
    return items


def mmlu(d: Path) -> Items:
    return [(f"{p.stem}#{i}", q) for p in sorted(d.glob("*/*.csv"))
            for i, q in enumerate(_csv_column(p, 0, header=False))]


def cmmlu(d: Path) -> Items:
    return [(f"{p.parent.name}/{p.stem}#{i}", q) for p in sorted(d.glob("*/*.csv"))
            for i, q in enumerate(_csv_column(p, "Question", header=True))]


# dataset folder → reader. Every eval-only dataset in domainlm.data.usage.EVAL_ONLY has one (a test checks).
READERS: dict[str, Callable[[Path], Items]] = {
    "pubmedqa": pubmedqa,
    "medqa_usmle_4opt": medagents_jsonl,
    "medmcqa_medagents": medagents_jsonl,
    "mmlu_medical_medagents": medagents_jsonl,
    "cmb_clin": cmb_clin,
    "chembench": chembench,
    "scibench_chemistry": scibench,
    "agieval_gaokao_chemistry": agieval,
    "gaokao_bench_chemistry": gaokao_bench,
    "formationeval_oil_gas": formationeval,
    "northseapqa_oil_gas": northseapqa,
    "atmossci_bench": atmossci,
    "geobench_k2": geobench,
    "mmlu_hendrycks_2020-09": mmlu,
    "cmmlu": cmmlu,
}


def eval_set_texts(name: str) -> Items:
    return READERS[name](dataset_dir(name))


def eval_set_sha256(name: str) -> str:
    """One hash over every data file of the set (licence files excluded), for cache keys and the data card."""
    folder = dataset_dir(name)
    return files_sha256([p for p in folder.rglob("*") if p.is_file() and p.suffix in (".json", ".jsonl", ".csv")],
                        folder)
