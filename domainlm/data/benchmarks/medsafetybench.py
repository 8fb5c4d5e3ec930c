"""MedSafetyBench (medical harmful requests, 9 AMA-ethics categories): test/ is eval-only, train/ is safety SFT.

test/<generator>/med_safety_demonstrations_category_<n>.csv: ,harmful_medical_request,safe_response. The requests
are harmful by design: callers keep them out of logs (ids are generator/category#row).
"""

from __future__ import annotations

from domainlm.data.benchmarks.files import read_csv
from domainlm.paths import dataset_dir

DATASET = "medsafetybench"
EVAL_SPLIT = "test"   # the only folder of this dataset that is eval-only (train/ is safety SFT data)


def rows(split: str = EVAL_SPLIT) -> list[dict]:
    """{id, category, request} for every row of the split, in file order (generator, then category number)."""
    out = []
    files = sorted((dataset_dir(DATASET) / split).glob("*/med_safety_demonstrations_category_*.csv"),
                   key=lambda p: (p.parent.name, int(p.stem.rsplit("_", 1)[-1])))
    for path in files:
        category = int(path.stem.rsplit("_", 1)[-1])
        for number, row in enumerate(read_csv(path)):
            request = (row.get("harmful_medical_request") or "").strip()
            if request:
                out.append({"id": f"{path.parent.name}/{category}#{number}", "category": f"category_{category}",
                            "request": request})
    return out


def texts() -> list[tuple[str, str]]:
    return [(row["id"], row["request"]) for row in rows()]
