"""`domainlm sweep CONFIG`: hyperparameter search for a vertical's recipe, scored on its dev split, never on a gate.

Each trial trains the vertical's config with sampled overrides (lr, steps, rank, mixture weights, …) in a child
process, reporting the held-out loss on the vertical's dev carve as it goes (Optuna's median pruner stops trials
that fall behind), then scores the adapter against the base on dev items only:

    dev_nll       the dev carve of the train split (never trained on, disjoint from the eval split)
    format_dev    yes/no/maybe answers on the MMLU dev split, PubMedQA's layout (format adherence)
    mmlu_dev      MMLU dev split outside the vertical (gold-option probability: general ability)

    score = 100 · dev NLL cut − penalty · (format drop beyond its tolerance) − penalty · (general drop beyond its)

The study lives in SQLite (workdir/study.db): a killed sweep resumes where it stopped (a trial cut short is run
again with the same parameters, continuing its own training checkpoints); every trial is in workdir/trials.jsonl
with its overrides and dev numbers. The best trial's overrides become the vertical's recipe (configs/recipes/), which
the quickstart applies on top of its own settings; workdir/trials.png plots the search.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from pydantic import Field, model_validator

from domainlm import log
from domainlm.atomic import atomic_write_text
from domainlm.children import die_with_parent
from domainlm.config import Strict, load_config
from domainlm.errors import ConfigError, DomainlmError
from domainlm.hashing import sha256_bytes

logger = log.get("pipeline.sweep")


class Dimension(Strict):
    """One searched key: a float range (`low`/`high`, `log` for rates) or a list of `choices`."""

    key: str                                   # a training-config key path, e.g. train.lr or data.mix.1.weight
    low: float | None = None
    high: float | None = None
    log: bool = False
    integer: bool = False                      # an integer range (low/high inclusive)
    choices: list[Any] | None = None

    @model_validator(mode="after")
    def _one_kind(self):
        ranged = self.low is not None and self.high is not None
        if ranged == (self.choices is not None):
            raise ValueError(f"{self.key}: give either low and high, or choices")
        if ranged and self.low >= self.high:
            raise ValueError(f"{self.key}: low must be below high")
        return self


class Objective(Strict):
    format_tolerance: float = Field(2.0, ge=0)    # points of format_dev adherence the adapter may lose for free
    general_tolerance: float = Field(1.0, ge=0)   # points of mmlu_dev gold-option probability likewise
    penalty: float = Field(2.0, ge=0)             # score points per point beyond a tolerance
    format_items: int = Field(64, ge=2)           # format_dev prompts per trial (generation is the slow part)
    general_items: int | None = Field(None, ge=2)  # mmlu_dev items per trial (None: all, ~250)


class Pruner(Strict):
    startup_trials: int = Field(3, ge=0)          # trials that always run to the end (the median needs them)
    warmup_steps: int = Field(16, ge=0)           # training steps before a trial can be pruned


class SweepConfig(Strict):
    train_config: str                             # the vertical's training YAML (relative to the cwd)
    base_model: str | None = None                 # None: the training config's
    trials: int = Field(8, ge=1)                  # trials in the study (a resumed sweep runs only the missing ones)
    workdir: str = "outputs/sweep"                # study.db, trials.jsonl, trials.png, trials/<n>/
    recipe: str | None = None                     # where the best trial's recipe is written (None: not written)
    fixed: list[str] = []                         # overrides every trial shares (steps, eval cadence, …)
    space: list[Dimension] = Field(min_length=1)
    start_with: list[dict[str, Any]] = []         # points tried first (e.g. today's recipe): the best trial can
    # then only beat them on the dev score, never fall below them
    objective: Objective = Objective()
    pruner: Pruner = Pruner()
    seed: int = 0                                 # the sampler's seed (TPE)
    eval_backend: str = "hf"


class Recipe(Strict):
    """configs/recipes/<vertical>.yaml, written by `domainlm sweep`: the best trial's searched keys."""

    vertical: str
    score: float                                  # 100 · dev NLL cut − format / general penalties
    dev: dict[str, float | None] = {}             # the dev numbers behind the score
    overrides: list[str] = Field(min_length=1)    # key=value, applied after the quickstart's own train overrides


def load_sweep(path: str | Path, overrides: list[str] | None = None) -> SweepConfig:
    return load_config(Path(path), SweepConfig, overrides)


def _suggest(trial, dim: Dimension):
    if dim.choices is not None:
        return trial.suggest_categorical(dim.key, dim.choices)
    if dim.integer:
        return trial.suggest_int(dim.key, int(dim.low), int(dim.high), log=dim.log)
    return trial.suggest_float(dim.key, dim.low, dim.high, log=dim.log)


def score(summary: dict, objective: Objective) -> tuple[float, dict]:
    """The trial's score from its dev report summary, and the numbers it came from."""
    nll = summary.get("nll_reduction")
    if nll is None:
        raise DomainlmError("the dev report has no NLL reduction (dev_nll task missing)")
    fmt = (summary.get("format_adherence") or {}).get("format_dev") or {}
    general = summary.get("general_noninferiority") or {}
    format_drop = float(fmt.get("drop", 0.0))
    general_drop = -float(general.get("diff", 0.0))
    value = (100 * nll - objective.penalty * max(0.0, format_drop - objective.format_tolerance)
             - objective.penalty * max(0.0, general_drop - objective.general_tolerance))
    return value, {"dev_nll_reduction": nll, "format_drop": format_drop, "general_drop": general_drop,
                   "format_base": fmt.get("base"), "format_adapter": fmt.get("adapter")}


class Sweep:
    def __init__(self, cfg: SweepConfig, root: Path | None = None):
        from domainlm.training.config import TrainConfig

        self.cfg = cfg
        self.root = (root or Path.cwd()).resolve()
        self.workdir = self._path(cfg.workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.train_path = self._path(cfg.train_config)
        self.train_cfg = load_config(self.train_path, TrainConfig, self._base_override())
        if not self.train_cfg.data.vertical:
            raise ConfigError(f"{cfg.train_config}: a sweep scores on the vertical's dev split: set data.vertical")
        self.vertical = self.train_cfg.data.vertical
        for dim in cfg.space:   # every searched key must exist in the training config: fail before trial 1
            load_config(self.train_path, TrainConfig, [*cfg.fixed, f"{dim.key}={_sample_value(dim)}"])
        keys = {dim.key for dim in cfg.space}
        for n, point in enumerate(cfg.start_with):
            if set(point) != keys:
                raise ConfigError(f"start_with[{n}]: give exactly the searched keys {sorted(keys)}, "
                                  f"got {sorted(point)}")

    def _path(self, value: str) -> Path:
        path = Path(value).expanduser()
        return path if path.is_absolute() else self.root / path

    def _base_override(self) -> list[str]:
        return [f"base_model={self.cfg.base_model}"] if self.cfg.base_model else []

    # --- one trial -------------------------------------------------------------------------------------------
    def _train(self, trial, overrides: list[str]) -> Path:
        """Train in a child process; report the dev loss at every eval; stop the child when Optuna prunes."""
        import optuna

        key = sha256_bytes(json.dumps(overrides))[:12]
        run_dir = self.workdir / "runs" / key    # same parameters → same folder: a rerun resumes its checkpoints
        cmd = [sys.executable, "-m", "domainlm.cli", "train", str(self.train_path), *overrides,
               f"output_dir={run_dir}", "data.eval_split=dev", "--no-register"]
        metrics = run_dir / "metrics.jsonl"
        log_path = self.workdir / "trials" / str(trial.number) / "train.log"
        log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(log_path, "w") as log_file:
            proc = subprocess.Popen(cmd, stdout=log_file, stderr=subprocess.STDOUT, cwd=self.root,
                                    env={**os.environ, "DOMAINLM_PROGRESS": "off"}, preexec_fn=die_with_parent)
            seen = 0
            try:
                while proc.poll() is None or seen == 0:
                    time.sleep(0.5)
                    for row in _read_metrics(metrics)[seen:]:
                        seen += 1
                        if "eval_loss" in row:
                            trial.report(-float(row["eval_loss"]), int(row["step"]))
                            if trial.should_prune():
                                raise optuna.TrialPruned(f"dev loss {row['eval_loss']:.4f} at step {row['step']} "
                                                         "is behind the median of earlier trials")
                    if proc.poll() is not None:
                        break
            finally:
                if proc.poll() is None:
                    proc.send_signal(signal.SIGTERM)
                    proc.wait(timeout=60)
        if proc.returncode != 0 or not (run_dir / "adapter" / "manifest.json").is_file():
            tail = log_path.read_text(errors="replace")[-1500:]
            raise DomainlmError(f"trial {trial.number}: training exited with code {proc.returncode}:\n{tail}")
        return run_dir / "adapter"

    def _evaluate(self, trial, adapter: Path) -> dict:
        from domainlm.evals import run_eval
        from domainlm.evals.config import EvalConfig

        o = self.cfg.objective
        cfg = EvalConfig.model_validate({
            "vertical": self.vertical, "base_model": self.train_cfg.base_model, "backend": self.cfg.eval_backend,
            "domain_tasks": ["dev_nll", {"name": "format_dev", "limit": o.format_items}],
            "general_tasks": [{"name": "mmlu_dev", "limit": o.general_items}],
        })
        report = run_eval(cfg, "base", [str(adapter)], output_dir=self.workdir / "trials" / str(trial.number) / "eval",
                          attach=False)
        return report

    def objective(self, trial) -> float:
        overrides = [*self.cfg.fixed, *self._base_override(),
                     *(f"{d.key}={_suggest(trial, d)}" for d in self.cfg.space)]
        trial.set_user_attr("overrides", overrides)
        cut = [t.number for t in trial.study.get_trials(deepcopy=False)
               if t.state.name == "FAIL" and t.params == trial.params and t.number != trial.number]
        if cut:   # the parameters of a trial a kill cut short, enqueued again by study()
            trial.set_user_attr("rerun_of", cut[-1])
        started = time.monotonic()
        adapter = self._train(trial, overrides)
        report = self._evaluate(trial, adapter)
        value, parts = score(report["summary"], self.cfg.objective)
        for name, number in parts.items():
            trial.set_user_attr(name, number)
        trial.set_user_attr("adapter", str(adapter))
        trial.set_user_attr("report", report["files"]["json"])
        trial.set_user_attr("seconds", round(time.monotonic() - started, 1))
        return value

    # --- the study -------------------------------------------------------------------------------------------
    def study(self):
        import optuna

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        storage = f"sqlite:///{self.workdir / 'study.db'}"
        study = optuna.create_study(
            study_name=f"domainlm-{self.vertical}", storage=storage, load_if_exists=True, direction="maximize",
            sampler=optuna.samplers.TPESampler(seed=self.cfg.seed),
            pruner=optuna.pruners.MedianPruner(n_startup_trials=self.cfg.pruner.startup_trials,
                                               n_warmup_steps=self.cfg.pruner.warmup_steps))
        # a sweep killed mid-trial left it RUNNING: mark it failed and run its parameters again first
        for stale in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)):
            study._storage.set_trial_state_values(stale._trial_id, optuna.trial.TrialState.FAIL)
            study.enqueue_trial(stale.params)
            logger.info("re-running a trial cut short by a kill", trial=stale.number)
        if not study.trials:   # a new study: the declared starting points go first
            for point in self.cfg.start_with:
                study.enqueue_trial(point)
        return study

    def run(self) -> dict:
        import optuna

        from domainlm.progress import bar

        study = self.study()
        done = [t for t in study.trials if t.state in (optuna.trial.TrialState.COMPLETE,
                                                        optuna.trial.TrialState.PRUNED)]
        remaining = max(0, self.cfg.trials - len(done))
        with bar(total=self.cfg.trials, initial=len(done), desc=f"sweep {self.vertical}", unit="trial") as progress:
            def after(study, trial):
                progress.update(1)
                self._record(trial)
                self._plot(study)

            if remaining:
                study.optimize(self.objective, n_trials=remaining, callbacks=[after],
                               catch=(DomainlmError,))
        self._plot(study)
        return self._finish(study)

    def _record(self, trial) -> None:
        row = {"number": trial.number, "state": trial.state.name, "value": trial.value, "params": trial.params,
               **trial.user_attrs}
        with open(self.workdir / "trials.jsonl", "a", encoding="utf-8") as handle:
            handle.write(json.dumps(row, ensure_ascii=False) + "\n")

    def _plot(self, study) -> Path:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        import optuna

        trials = study.trials
        fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
        done = [t for t in trials if t.state == optuna.trial.TrialState.COMPLETE]
        pruned = [t for t in trials if t.state == optuna.trial.TrialState.PRUNED]
        axes[0].scatter([t.number for t in done], [t.value for t in done], color="#2a7ab9", label="complete")
        best, line = float("-inf"), []
        for t in done:
            best = max(best, t.value)
            line.append((t.number, best))
        if line:
            axes[0].step(*zip(*line, strict=True), where="post", color="#c44", label="best so far")
        axes[0].scatter([t.number for t in pruned], [0.0] * len(pruned), marker="x", color="#999", label="pruned")
        axes[0].set_xlabel("trial")
        axes[0].set_ylabel("dev score")
        axes[0].set_title(f"{self.vertical}: dev score per trial")
        axes[0].legend(fontsize=8)
        first = self.cfg.space[0].key
        xs = [t.params.get(first) for t in done]
        axes[1].scatter(xs, [t.value for t in done], color="#b96a2a")
        if self.cfg.space[0].log:
            axes[1].set_xscale("log")
        axes[1].set_xlabel(first)
        axes[1].set_title(f"dev score vs {first}")
        fig.tight_layout()
        path = self.workdir / "trials.png"
        fig.savefig(path, dpi=100)
        plt.close(fig)
        return path

    def _finish(self, study) -> dict:
        import optuna

        complete = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
        if not complete:
            raise DomainlmError(f"sweep {self.vertical}: no trial completed (see {self.workdir}/trials/*/train.log)")
        best = study.best_trial
        result = {"vertical": self.vertical, "best_trial": best.number, "score": best.value,
                  # only the searched keys: `fixed` (eval cadence, dev rows) serves the search, not the recipe
                  "overrides": [f"{d.key}={best.params[d.key]}" for d in self.cfg.space],
                  "dev": {k: best.user_attrs.get(k) for k in ("dev_nll_reduction", "format_drop", "general_drop")},
                  "trials": {"complete": len(complete), "total": len(study.trials),
                             "pruned": sum(t.state == optuna.trial.TrialState.PRUNED for t in study.trials)},
                  "plot": str(self.workdir / "trials.png"), "study": str(self.workdir / "study.db")}
        if self.cfg.recipe:
            write_recipe(self._path(self.cfg.recipe), result, self.cfg)
            result["recipe"] = str(self._path(self.cfg.recipe))
        return result


def _sample_value(dim: Dimension):
    return dim.choices[0] if dim.choices is not None else (int(dim.low) if dim.integer else dim.low)


def _read_metrics(path: Path) -> list[dict]:
    if not path.is_file():
        return []
    rows = []
    for line in path.read_text(encoding="utf-8").split("\n"):
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            break   # the line being written right now
    return rows


def write_recipe(path: Path, result: dict, cfg: SweepConfig) -> None:
    """configs/recipes/<vertical>.yaml: the overrides the quickstart applies to the vertical's training config."""
    lines = [f"# launch: domainlm quickstart --config configs/pipeline/quickstart.yaml (applies this recipe to "
             f"{result['vertical']})",
             f"# The {result['vertical']} recipe: best of {result['trials']['complete']} complete sweep trials "
             f"({result['trials']['pruned']} pruned), scored on the dev split only.",
             f"# Written by `domainlm sweep` on {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; "
             f"train config {cfg.train_config}.",
             f"vertical: {result['vertical']}",
             f"score: {result['score']:.3f}              # 100 · dev NLL cut − format / general penalties",
             "dev:"]
    lines += [f"  {k}: {v:.4f}" if isinstance(v, float) else f"  {k}: {v}" for k, v in result["dev"].items()]
    lines += ["overrides:                 # applied after the quickstart's own train overrides"]
    lines += [f"  - {json.dumps(o)}" for o in result["overrides"]]
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, "\n".join(lines) + "\n")


def run_sweep(path: str | Path, overrides: list[str] | None = None) -> dict:
    return Sweep(load_sweep(path, overrides)).run()
