"""A registered vertical: its spec (vertical.yaml) plus the data it names, loaded lazily and cached per process."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from domainlm import log, paths
from domainlm.data.usage import assert_trainable
from domainlm.errors import DataError
from domainlm.atomic import atomic_write_json
from domainlm.hashing import sha256_bytes
from domainlm.verticals import decontam
from domainlm.verticals.rows import LoadedSource, load_source
from domainlm.verticals.spec import Bilingual, Gates, Policy, VerticalSpec

SPLITS = ("train", "dev", "eval")
# dev: carved once from the train split by a fixed hash (10% of it, at most 64 rows) and never trained on — the
# split `domainlm sweep` scores trials on, disjoint from the eval split and every benchmark item that gates
DEV_SHARE, DEV_MAX = 0.10, 64
_log = log.get("verticals")


class Vertical:
    """One vertical. Data is read on first use (registration never touches the data folder)."""

    def __init__(self, spec: VerticalSpec, folder: Path, spec_path: Path | None = None):
        self.spec = spec
        self.folder = Path(folder).resolve()
        self.spec_path = spec_path
        self._decontam: tuple[str, dict, set[str]] | None = None  # (cache key, report, contaminated ids)
        self._dev: tuple[str, set[str]] | None = None  # (decontamination cache key, dev ids)

    # -- the parts every vertical has -------------------------------------------------------------------------
    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def title(self) -> dict:
        return self.spec.title.model_dump()

    @property
    def policy(self) -> Policy:
        return self.spec.policy

    @property
    def eval_suite(self) -> list[str]:
        return list(self.spec.eval_suite)

    @property
    def general_suite(self) -> list[str]:
        return list(self.spec.general_suite)

    @property
    def gates(self) -> Gates:
        return self.spec.gates

    @property
    def system_prompt(self) -> Bilingual:
        """Call it with a language (`system_prompt("zh")`), or `.model_dump()` for both."""
        return self.spec.system_prompt

    def __repr__(self) -> str:
        return f"Vertical({self.name!r}, folder={str(self.folder)!r})"

    # -- data ---------------------------------------------------------------------------------------------------
    def load(self) -> list[LoadedSource]:
        """Every source parsed and split (cached per process; a changed file is re-read)."""
        loaded = []
        for source in self.spec.sources:
            if source.split != "eval":
                assert_trainable(source.dataset or str(self.folder / (source.path or "")))
            loaded.append(load_source(source, self.folder, self.spec.eval_percent))
        return loaded

    def safety_rows(self, limit: int | None = None, *, seed: int = 0, system: bool = True) -> list[dict]:
        """The vertical's safety SFT rows (harmful requests answered safely), train side of their split."""
        if not self.spec.safety_sources:
            raise DataError(f"vertical '{self.name}' declares no safety_sources: a data.mix 'safety' part has "
                            "nothing to draw from (remove it, or add safety data to the vertical)")
        rows = []
        for source in self.spec.safety_sources:
            assert_trainable(source.dataset or str(self.folder / (source.path or "")))
            rows += [r for r in load_source(source, self.folder, self.spec.eval_percent).rows if r["split"] == "train"]
        rows = _sample(rows, limit, seed)
        return [self._public_row(r, system) for r in rows]

    def safety_data_sources(self) -> list[dict]:
        return [self._record(load_source(s, self.folder, self.spec.eval_percent)) for s in self.spec.safety_sources]

    def sft_rows(self, split: str = "train", limit: int | None = None, *, seed: int = 0,
                 sources: list[str] | None = None, lang: str | None = None, system: bool = True) -> list[dict]:
        """Chat rows {"id", "source", "lang", "messages"} of one split.

        The train split leaves out rows the decontamination found overlapping an eval set (mode: drop). `limit`
        takes a deterministic sample (same seed → same rows); `sources`/`lang` filter; `system` prepends the
        vertical's system prompt in the row's language (what the gateway injects at serving time).
        """
        if split not in SPLITS:
            raise DataError(f"split must be one of {SPLITS}, not '{split}'")
        known = [s.name for s in self.spec.sources]
        if sources is not None and set(sources) - set(known):
            raise DataError(f"vertical '{self.name}' has no source {sorted(set(sources) - set(known))}; "
                            f"its sources: {known}")
        drop = self.contaminated_ids() if split != "eval" else set()
        dev = self.dev_ids() if split != "eval" else set()   # the eval split needs neither
        rows = [r for loaded in self.load() for r in loaded.rows
                if r["split"] == ("eval" if split == "eval" else "train") and (split == "eval" or
                                                                            (r["id"] in dev) == (split == "dev"))
                and (sources is None or r["source"] in sources)
                and (lang is None or r["lang"] == lang) and r["id"] not in drop]
        rows = _sample(rows, limit, seed)
        return [self._public_row(r, system) for r in rows]

    def dev_ids(self) -> set[str]:
        """The dev carve of the train split: fixed by a hash of each row id, the same on every machine."""
        drop = self.contaminated_ids()
        key = self._decontam[0]   # set by contaminated_ids(): the same data and eval sets give the same carve
        if self._dev is None or self._dev[0] != key:
            train = [r["id"] for loaded in self.load() for r in loaded.rows
                     if r["split"] == "train" and r["id"] not in drop]
            size = min(DEV_MAX, int(len(train) * DEV_SHARE))
            self._dev = (key, set(sorted(train, key=lambda i: hashlib.sha256(f"dev:{i}".encode()).digest())[:size]))
        return self._dev[1]

    def _public_row(self, row: dict, system: bool) -> dict:
        head = [{"role": "system", "content": self.system_prompt(row["lang"])}] if system else []
        return {"id": row["id"], "source": row["source"], "lang": row["lang"], "meta": dict(row["meta"]),
                "messages": head + [dict(m) for m in row["messages"]]}

    def data_sources(self) -> list[dict]:
        """What an adapter manifest records: name, path, sha256, rows, licence (+ flags)."""
        return [self._record(loaded) for loaded in self.load()]

    @staticmethod
    def _record(loaded: LoadedSource) -> dict:
        s = loaded.source
        return {"name": s.name, "path": str(loaded.root), "files": [p.name for p in loaded.files],
                "sha256": loaded.sha256, "rows": len(loaded.rows), "licence": s.licence,
                "restricted": s.restricted, "non_commercial": s.non_commercial,
                "research_only": s.research_only, "project_authored": s.project_authored,
                "synthetic": s.synthetic, "split": s.split}

    # -- decontamination ----------------------------------------------------------------------------------------
    def heldout_eval_set(self) -> tuple[str, list[tuple[str, str]]]:
        """This vertical's own eval split as an eval set (its prompts), for decontamination."""
        items = [(r["id"], decontam.prompt_text(r)) for loaded in self.load() for r in loaded.rows
                 if r["split"] == "eval"]
        return sha256_bytes(json.dumps(items, ensure_ascii=False)), items

    def eval_index(self) -> decontam.EvalIndex:
        """n-grams of every shared eval set + this vertical's held-out prompts."""
        d = self.spec.decontamination
        return decontam.vertical_index(f"{self.name}_heldout", self.heldout_eval_set(), d.word_ngram, d.char_ngram)

    def decontamination(self) -> tuple[dict, set[str]]:
        """(report, contaminated training row ids), cached on disk under $DOMAINLM_HOME/cache/decontam."""
        loaded = self.load()
        d = self.spec.decontamination
        shared = decontam.shared_eval_sets()
        key = sha256_bytes(json.dumps({
            "v": decontam.VERSION, "params": d.model_dump(), "eval_percent": self.spec.eval_percent,
            "sources": [(x.source.model_dump_json(), x.sha256) for x in loaded],
            "eval": {name: sha for name, (sha, _) in shared.items()},
        }, sort_keys=True))
        if self._decontam and self._decontam[0] == key:
            return self._decontam[1], self._decontam[2]
        cache = paths.home() / "cache" / "decontam" / f"{self.name}-{key[:24]}.json"
        if cache.is_file():
            stored = json.loads(cache.read_text(encoding="utf-8"))
            report, ids = stored["report"], set(stored["contaminated_ids"])
        else:
            train = {x.source.name: [r for r in x.rows if r["split"] == "train"] for x in loaded}
            index = self.eval_index()
            heldout = f"{self.name}_heldout"
            drop = {n for n in index.sets if (d.heldout if n == heldout else d.mode) == "drop"}
            report, contaminated = decontam.decontaminate(train, index, drop)
            report.update(mode=d.mode, heldout_mode=d.heldout)
            ids = set(contaminated)
            atomic_write_json(cache, {"report": report, "contaminated_ids": sorted(ids)})
            _log.info("decontamination", vertical=self.name, rows=report["train_rows_checked"], dropped=len(ids))
        self._decontam = (key, report, ids)
        return report, ids

    def contaminated_ids(self) -> set[str]:
        return self.decontamination()[1]

    # -- data card ----------------------------------------------------------------------------------------------
    def data_card(self, decontamination: bool = True) -> dict:
        from domainlm.verticals.card import build_card

        return build_card(self, decontamination=decontamination)

    def data_card_markdown(self, decontamination: bool = True) -> str:
        from domainlm.verticals.card import card_markdown

        return card_markdown(self.data_card(decontamination))


def _sample(rows: list[dict], limit: int | None, seed: int) -> list[dict]:
    """At most `limit` rows, chosen by a seeded hash of their ids (same seed → same rows on every machine)."""
    if limit is None or limit >= len(rows):
        return rows
    return sorted(rows, key=lambda r: hashlib.sha256(f"{seed}:{r['id']}".encode()).digest())[:limit]
