"""PNG charts of a report: base vs adapters per domain task (scores and NLL panels), and the general-regression panel
(adapter − base per general task, with 95% paired-bootstrap intervals)."""

from __future__ import annotations

from pathlib import Path


def _plt():
    import matplotlib

    matplotlib.use("Agg")  # files only: no display on servers and in CI
    import matplotlib.pyplot as plt

    return plt


def _bars(ax, tasks: dict, labels: list[str], scale: float, ylabel: str) -> None:
    width = 0.8 / max(1, len(labels))
    names = list(tasks)
    for k, label in enumerate(labels):
        means, low, high = [], [], []
        for name in names:
            score = tasks[name]["scores"][label][tasks[name]["primary_metric"]]
            means.append(scale * score["mean"])
            low.append(scale * (score["mean"] - score["ci_low"]))
            high.append(scale * (score["ci_high"] - score["mean"]))
        xs = [i + (k - (len(labels) - 1) / 2) * width for i in range(len(names))]
        ax.bar(xs, means, width, yerr=[low, high], capsize=3, label=label)
    ax.set_xticks(range(len(names)))
    ax.set_xticklabels(names, rotation=30, ha="right", fontsize=8)
    ax.set_ylabel(ylabel)
    ax.grid(axis="y", alpha=0.3)


def draw(report: dict, folder: Path) -> list[Path]:
    plt = _plt()
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    labels = [s["label"] for s in report["subjects"]]
    tasks = report["tasks"]
    written = []
    domain_scores = {n: t for n, t in tasks.items() if t["suite"] == "domain" and t["higher_is_better"]}
    domain_nll = {n: t for n, t in tasks.items() if t["suite"] == "domain" and not t["higher_is_better"]}
    panels = [p for p in ((domain_scores, 100.0, "score (points)"), (domain_nll, 1.0, "answer NLL / token (lower "
                                                                                   "is better)")) if p[0]]
    if panels:
        fig, axes = plt.subplots(1, len(panels), figsize=(6 + 4 * len(panels), 4.5), squeeze=False)
        for ax, (group, scale, ylabel) in zip(axes[0], panels, strict=True):
            _bars(ax, group, labels, scale, ylabel)
        axes[0][0].legend(fontsize=8)
        fig.suptitle(f"{report['vertical']}: base vs adapters per domain task (95% bootstrap CI)")
        fig.tight_layout()
        written.append(folder / "tasks.png")
        fig.savefig(written[-1], dpi=110)
        plt.close(fig)
    general = {n: t for n, t in tasks.items() if t["suite"] == "general"}
    if general:
        fig, ax = plt.subplots(figsize=(7, 4))
        adapters = labels[1:]
        if adapters:
            width = 0.8 / len(adapters)
            for k, label in enumerate(adapters):
                cmp = [general[n]["comparisons"][label] for n in general]
                xs = [i + (k - (len(adapters) - 1) / 2) * width for i in range(len(general))]
                ax.bar(xs, [c["effect"] for c in cmp], width, label=label,
                       yerr=[[c["effect"] - c["ci_low"] for c in cmp], [c["ci_high"] - c["effect"] for c in cmp]],
                       capsize=3)
            ax.axhline(0, color="black", linewidth=0.8)
            values = (report.get("gates") or {}).get("values") or {}
            limit = (values.get("general_noninferiority") or {}).get("margin", values.get("max_general_regression"))
            if limit is not None:  # the promotion gate: the adapter may lose at most this much
                ax.axhline(-limit, color="red", linestyle="--", linewidth=1, label=f"margin −{limit:g} points")
            ax.set_ylabel("adapter − base (points)")
            ax.legend(fontsize=8)
        else:
            _bars(ax, general, labels, 100.0, "score (points)")
        ax.set_xticks(range(len(general)))
        ax.set_xticklabels(list(general), rotation=30, ha="right", fontsize=8)
        ax.set_title("General regression (MMLU / CMMLU outside the vertical)")
        ax.grid(axis="y", alpha=0.3)
        fig.tight_layout()
        written.append(folder / "general.png")
        fig.savefig(written[-1], dpi=110)
        plt.close(fig)
    return written
