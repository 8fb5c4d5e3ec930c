"""`domainlm quickstart`: the whole vertical pipeline on one base model, end to end, resumable.

    prepare base → per vertical: train → register → eval (base vs adapter) → promote if the gates pass
    → start the gateway on vLLM → ask one real question per vertical (official `openai` client) → report

Each stage runs alone too (`--only STAGE`); a re-run skips stages whose inputs hash the same and whose outputs
still verify (domainlm.pipeline.stages), and an interrupted training resumes from its own checkpoints.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from domainlm import log
from domainlm.artifacts import artifact_id, verify_artifact
from domainlm.config import apply_overrides, load_config, load_yaml, validate
from domainlm.errors import ConfigError, DomainlmError
from domainlm.hashing import sha256_file
from domainlm.pipeline.config import PipelineConfig, merge
from domainlm.pipeline.stages import StageRunner
from domainlm.progress import bar

logger = log.get("pipeline")

STAGES = ("prepare", "train", "register", "eval", "promote", "serve", "report")


def load_pipeline(path: str | Path, overrides: list[str] | None = None, smoke: bool = False) -> PipelineConfig:
    """The pipeline config; `smoke` deep-merges its `smoke:` section (the reduced CI run); command-line
    overrides apply last, so `--smoke workdir=/tmp/x` still moves the workdir."""
    data, lines = load_yaml(path)
    cfg = validate(PipelineConfig, data, str(path), lines)
    merged = cfg.model_dump(exclude={"smoke"})
    if smoke:
        merged = merge(merged, cfg.smoke)
    apply_overrides(merged, overrides)
    return validate(PipelineConfig, merged, f"{path} (with {'smoke section and ' if smoke else ''}overrides)")


class Quickstart:
    def __init__(self, cfg: PipelineConfig, root: Path | None = None):
        from domainlm.registry import Registry

        self.cfg = cfg
        self.root = (root or Path.cwd()).resolve()
        self.workdir = self._path(cfg.workdir)
        self.runner = StageRunner(self.workdir)
        self.registry = Registry(cfg.registry)
        self.results: dict[str, dict] = {v: {} for v in cfg.verticals}

    def _path(self, value: str) -> Path:
        path = Path(value).expanduser()
        return path if path.is_absolute() else self.root / path

    # --- stages ---------------------------------------------------------------------------------------------
    def prepare(self) -> dict:
        from domainlm.models import resolve_base

        def work():
            return resolve_base(self.cfg.base_model, prepare_if_missing=True).to_dict()

        self.base = self.runner.run("prepare", {"base": self.cfg.base_model}, work,
                                    lambda r: Path(r["path"]).is_dir())
        return self.base

    def _train_config(self, vertical: str):
        from domainlm.training.config import TrainConfig

        path = self._path(self.cfg.train.config_dir) / f"{vertical}.yaml"
        return load_config(path, TrainConfig, self._train_overrides(vertical)), path

    def _train_overrides(self, vertical: str) -> list[str]:
        return [*self.cfg.train.overrides, *self.recipe(vertical), *self.cfg.train.per_vertical.get(vertical, []),
                f"base_model={self.cfg.base_model}"]

    def recipe(self, vertical: str) -> list[str]:
        """The vertical's tuned recipe (`domainlm sweep` wrote it): its overrides, or none."""
        if not self.cfg.train.recipes_dir:
            return []
        path = self._path(self.cfg.train.recipes_dir) / f"{vertical}.yaml"
        if not path.is_file():
            return []
        data, _ = load_yaml(path)
        overrides = data.get("overrides") if isinstance(data, dict) else None
        if not isinstance(overrides, list) or not all(isinstance(o, str) for o in overrides):
            raise ConfigError(f"{path}: a recipe needs 'overrides', a list of key=value strings")
        return overrides

    def train(self, vertical: str) -> dict:
        from domainlm.training import train
        from domainlm.verticals import get_vertical

        config, path = self._train_config(vertical)
        spec = get_vertical(vertical)
        sources = [{"name": s["name"], "sha256": s["sha256"]}
                   for s in [*spec.data_sources(), *spec.safety_data_sources()]]
        inputs = {"config": config.model_dump(mode="json"), "base": self.base["weights_sha256"], "sources": sources}
        from domainlm.pipeline.stages import key_of

        # The run folder derives from the inputs: an interrupted run with the same inputs resumes its checkpoints.
        config.output_dir = str(self.workdir / "runs" / f"{vertical}-{key_of(inputs)[:10]}")

        def work():
            if self.cfg.train.nproc > 1 or self.cfg.train.accelerate_config:
                artifact = self._train_distributed(path, config)
            else:
                artifact = Path(train(config))
            manifest = verify_artifact(artifact)
            return {"artifact": str(artifact), "artifact_id": artifact_id(manifest), "config": str(path),
                    "metrics": manifest.get("metrics", {})}

        def valid(result):
            return artifact_id(verify_artifact(result["artifact"])) == result["artifact_id"]

        result = self.runner.run(f"train:{vertical}", inputs, work, valid)
        self.results[vertical]["train"] = result
        return result

    def _train_distributed(self, path: Path, config) -> Path:
        """Same training, N processes: torchrun (gloo/NCCL/HCCL ranks) or `accelerate launch` with FSDP/DeepSpeed."""
        from domainlm.training.launch import launch

        accel = self.cfg.train.accelerate_config
        overrides = [*self._train_overrides(config.vertical), f"output_dir={config.output_dir}"]
        code = launch([str(path), *overrides, "--no-register"], self.cfg.train.nproc,
                      str(self._path(accel)) if accel else None)
        if code != 0:
            raise DomainlmError(f"distributed training of {config.vertical} exited with code {code}")
        return config.run_dir() / "adapter"

    def register(self, vertical: str) -> dict:
        trained = self.results[vertical]["train"]

        def work():
            existing = [e for e in self.registry.list(vertical) if e.artifact_id == trained["artifact_id"]]
            entry = existing[-1] if existing else self.registry.register(trained["artifact"], vertical=vertical)
            return {"version": entry.version, "path": str(entry.path), "artifact_id": entry.artifact_id}

        def valid(result):
            return self.registry.get(vertical, result["version"]).artifact_id == trained["artifact_id"]

        result = self.runner.run(f"register:{vertical}", {"artifact_id": trained["artifact_id"],
                                                          "registry": str(self.registry.root)}, work, valid)
        self.results[vertical]["register"] = result
        return result

    def evaluate(self, vertical: str) -> dict:
        from domainlm.evals import run_eval
        from domainlm.pipeline.summary import gate_table
        from domainlm.verticals import get_vertical

        gates = get_vertical(vertical).gates
        reg = self.results[vertical]["register"]
        config = self._path(self.cfg.eval.config_dir) / f"{vertical}.yaml"
        out = self.workdir / "eval" / vertical
        inputs = {"artifact_id": reg["artifact_id"], "version": reg["version"], "config": sha256_file(config),
                  "limit": self.cfg.eval.limit, "backend": self.cfg.eval.backend, "overrides": self.cfg.eval.overrides,
                  "base": self.base["weights_sha256"], "gates": gates.fingerprint()}

        def work():
            report = run_eval(config, model=f"{vertical}@{reg['version']}", backend=self.cfg.eval.backend,
                              limit=self.cfg.eval.limit, output_dir=out,
                              overrides=[*self.cfg.eval.overrides, f"base_model={self.cfg.base_model}"],
                              attach=True, registry=self.registry)
            return {"report": report["files"]["json"], "markdown": report["files"]["markdown"],
                    "charts": report["files"]["charts"], "summary": report["summary"],
                    "gate_table": gate_table(report, gates)}

        result = self.runner.run(f"eval:{vertical}", inputs, work, lambda r: Path(r["report"]).is_file())
        self.results[vertical]["eval"] = result
        return result

    def promote(self, vertical: str) -> dict:
        reg, ev = self.results[vertical]["register"], self.results[vertical]["eval"]

        def work():
            current = self.registry.production(vertical)
            if current and current.version == reg["version"]:
                return {"promoted": True, "version": reg["version"], "reason": "already production"}
            try:
                self.registry.promote(vertical, reg["version"], actor="quickstart")
                return {"promoted": True, "version": reg["version"], "reason": "gates passed"}
            except DomainlmError as exc:  # a vertical that misses its gates stays a candidate, and we say why
                return {"promoted": False, "version": reg["version"], "reason": str(exc)}

        result = self.runner.run(f"promote:{vertical}", {"artifact_id": reg["artifact_id"],
                                                         "report": sha256_file(ev["report"])}, work)
        self.results[vertical]["promote"] = result
        return result

    def serve_and_ask(self) -> dict:
        """Start the gateway (real vLLM engine), ask each vertical's question with the official openai client."""
        from openai import OpenAI

        from domainlm.pipeline.gateway_run import running_gateway
        from domainlm.serving.auth import KeyStore

        pinned = [f"{v}@{r['register']['version']}" for v, r in self.results.items()
                  if not r.get("promote", {}).get("promoted")]
        overrides = [f"registry={self.registry.root}", f"bases.0.model={self.cfg.base_model}",
                     f"bases.0.verticals=[{','.join(self.cfg.verticals)}]", f"bases.0.pinned=[{','.join(pinned)}]",
                     f"auth.db={self.workdir / 'gateway.sqlite'}"]
        questions = {v: self.cfg.questions[v].model_dump() for v in self.cfg.verticals if v in self.cfg.questions}
        inputs = {"versions": {v: r["register"]["artifact_id"] for v, r in self.results.items()}, "pinned": pinned,
                  "questions": questions, "config": sha256_file(self._path(self.cfg.serve.config))}

        def work():
            secret, _ = KeyStore(self.workdir / "gateway.sqlite").create("quickstart", ["*"])
            answers = {}
            with running_gateway(str(self._path(self.cfg.serve.config)), overrides,
                                 self.workdir / "logs" / "gateway.log") as url:
                client = OpenAI(base_url=f"{url}/v1", api_key=secret, max_retries=2, timeout=300)
                for vertical, question in questions.items():
                    production = self.results[vertical].get("promote", {}).get("promoted")
                    model = vertical if production else f"{vertical}@{self.results[vertical]['register']['version']}"
                    started = time.time()
                    raw = client.chat.completions.with_raw_response.create(
                        model=model, messages=[{"role": "user", "content": question["en"]}],
                        max_tokens=self.cfg.serve.max_tokens, temperature=0)
                    reply = raw.parse()
                    answers[vertical] = {
                        "model": model, "served_by": reply.model, "question": question["en"],
                        "answer": reply.choices[0].message.content,
                        "adapter": raw.headers.get("x-domainlm-adapter"),
                        "policy_notes": raw.headers.get("x-domainlm-policy-notes"),
                        "seconds": round(time.time() - started, 2), "tokens": reply.usage.completion_tokens,
                    }
            return answers

        answers = self.runner.run("serve", inputs, work)
        for vertical, answer in answers.items():
            self.results[vertical]["answer"] = answer
        return answers

    def report(self) -> Path:
        from domainlm.pipeline.summary import write_summary

        return write_summary(self)

    # --- driver ---------------------------------------------------------------------------------------------
    def run(self, only: str | None = None) -> Path | None:
        if only and only not in STAGES:
            raise ConfigError(f"unknown stage '{only}': use one of {', '.join(STAGES)}")
        per_vertical = {"train", "register", "eval", "promote"}
        steps = [(stage, v) for stage in STAGES for v in (self.cfg.verticals if stage in per_vertical else [None])]
        if only:  # a stage alone: the stages before it are verified and skipped when done, run when not
            last = max(i for i, (stage, _) in enumerate(steps) if stage == only)
            steps = steps[: last + 1]
        calls = {"prepare": lambda _: self.prepare(), "train": self.train, "register": self.register,
                 "eval": self.evaluate, "promote": self.promote, "serve": lambda _: self.serve_and_ask(),
                 "report": lambda _: self.report()}
        result = None
        progress = bar(total=len(steps), desc="quickstart", unit="stage")
        for stage, vertical in steps:
            progress.set_postfix_str(f"{stage} {vertical or ''}".strip())
            result = calls[stage](vertical)
            progress.update(1)
        progress.close()
        return result if isinstance(result, Path) else None


def _check_verticals(cfg: PipelineConfig) -> None:
    from domainlm.verticals import list_verticals

    known = set(list_verticals())
    unknown = [v for v in cfg.verticals if v not in known]
    if unknown:
        raise ConfigError(f"pipeline verticals: unknown {unknown}; registered verticals are {sorted(known)}")


def run_quickstart(config: str | Path, overrides: list[str] | None = None, smoke: bool = False,
                   only: str | None = None) -> Path | None:
    cfg = load_pipeline(config, overrides, smoke)
    _check_verticals(cfg)
    pipeline = Quickstart(cfg)
    summary = pipeline.run(only)
    if summary:
        print(summary.read_text(encoding="utf-8"))
        print(json.dumps({"summary": str(summary), "ran": pipeline.runner.ran, "skipped": pipeline.runner.skipped}))
    return summary
