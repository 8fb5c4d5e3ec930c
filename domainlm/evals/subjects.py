"""What is evaluated: the base model, plus adapters from the registry (`medical@3`) or an artifact folder.

Every adapter is verified against its manifest (tampered artifacts are refused) and must have been trained on the
base being evaluated (same weights sha256), otherwise the comparison would be meaningless.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

from domainlm.artifacts import artifact_id, verify_artifact
from domainlm.errors import ConfigError, IntegrityError
from domainlm.models import ResolvedModel

MODEL_REF = re.compile(r"^(?P<vertical>[a-z][a-z0-9_]*)(?:@(?P<version>\d+))?$")


@dataclass(frozen=True)
class Subject:
    label: str                       # "base", "medical@3", or the adapter's name
    adapter: Path | None = None      # PEFT folder; None for the base model
    manifest: dict | None = None
    artifact_id: str | None = None
    vertical: str | None = None
    version: int | None = None

    @property
    def is_base(self) -> bool:
        return self.adapter is None

    def lora_rank(self) -> int:
        if self.adapter is None:
            return 0
        return int(json.loads((self.adapter / "adapter_config.json").read_text()).get("r", 8))

    def target_modules(self) -> list[str]:
        if self.adapter is None:
            return []
        targets = json.loads((self.adapter / "adapter_config.json").read_text()).get("target_modules") or []
        return [targets] if isinstance(targets, str) else list(targets)

    def to_dict(self) -> dict:
        return {"label": self.label, "adapter_path": str(self.adapter) if self.adapter else None,
                "artifact_id": self.artifact_id, "vertical": self.vertical, "version": self.version,
                "name": (self.manifest or {}).get("name")}


BASE = Subject(label="base")


def adapter_subject(folder: str | Path, base: ResolvedModel, label: str | None = None,
                    vertical: str | None = None, version: int | None = None) -> Subject:
    folder = Path(folder).expanduser().resolve()
    if not folder.is_dir():
        raise ConfigError(f"adapter folder not found: {folder}")
    manifest = verify_artifact(folder)  # IntegrityError on any hash mismatch
    trained_on = (manifest.get("base") or {}).get("weights_sha256")
    if trained_on and trained_on != base.weights_sha256:
        raise IntegrityError(f"adapter {folder} was trained on base weights {trained_on[:12]}…, but the base being "
                             f"evaluated ({base.ref}) has {base.weights_sha256[:12]}…: set base_model to its base")
    vertical = vertical or manifest.get("vertical")
    version = version if version is not None else manifest.get("version")
    if label is None:
        label = f"{vertical}@{version}" if vertical and version is not None else manifest.get("name") or folder.name
    return Subject(label=label, adapter=folder, manifest=manifest, artifact_id=artifact_id(manifest),
                   vertical=vertical, version=version)


def registry_subject(ref: str, base: ResolvedModel, registry=None) -> Subject:
    """`medical@3` → that registered version; `medical` → the production version (verified before use)."""
    from domainlm.registry import Registry, parse_ref

    if not MODEL_REF.match(ref):
        raise ConfigError(f"--model '{ref}': expected 'base', '<vertical>@<version>' (e.g. medical@3) or '<vertical>'")
    vertical, version = parse_ref(ref)
    entry = (registry or Registry()).get(vertical, version)
    return adapter_subject(entry.path, base, label=f"{entry.vertical}@{entry.version}", vertical=entry.vertical,
                           version=int(entry.version))


def resolve_subjects(model: str, adapters: list[str], base: ResolvedModel, registry=None) -> list[Subject]:
    """Base first, then each adapter; labels are unique so paired comparisons can name them."""
    subjects = [BASE]
    if model != "base":
        subjects.append(registry_subject(model, base, registry))
    subjects += [adapter_subject(path, base) for path in adapters]
    labels = [s.label for s in subjects]
    if len(set(labels)) != len(labels):
        raise ConfigError(f"two subjects share a label: {labels}")
    return subjects
