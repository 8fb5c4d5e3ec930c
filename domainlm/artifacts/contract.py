"""The one artifact contract shared by trainer, registry, eval and server: a PEFT folder + manifest.json.

manifest.json holds: name, vertical, version, base (model id, weights sha256, chat template sha256), data sources
(name, path, sha256, rows, licence), the full resolved training config, train metrics, the sha256 of every other
file in the folder, created_at and the domainlm version. Anything whose hashes do not match is refused.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from domainlm import __version__
from domainlm.errors import IntegrityError
from domainlm.atomic import atomic_dir
from domainlm.hashing import sha256_tree

MANIFEST = "manifest.json"
REQUIRED_FILES = ("adapter_config.json", "adapter_model.safetensors")


def build_manifest(folder: Path, *, name: str, vertical: str, base: dict, data_sources: list[dict], config: dict,
                   metrics: dict, version: int | None = None, extra: dict | None = None) -> dict:
    missing = [f for f in REQUIRED_FILES if not (folder / f).is_file()]
    if missing:
        raise IntegrityError(f"{folder} is not a PEFT adapter folder: missing {', '.join(missing)}")
    return {
        "name": name,
        "vertical": vertical,
        "version": version,
        "base": base,
        "data_sources": data_sources,
        "config": config,
        "metrics": metrics,
        "files": sha256_tree(folder, exclude=(MANIFEST,)),
        "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "domainlm_version": __version__,
        **(extra or {}),
    }


def write_manifest(folder: Path, manifest: dict) -> None:
    (folder / MANIFEST).write_text(json.dumps(manifest, indent=2, ensure_ascii=False) + "\n")


def read_manifest(folder: str | Path) -> dict:
    path = Path(folder) / MANIFEST
    if not path.is_file():
        raise IntegrityError(f"{folder} has no {MANIFEST}: not a domainlm artifact")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise IntegrityError(f"{path}: manifest is not valid JSON ({exc})") from None


def verify_artifact(folder: str | Path) -> dict:
    """Return the manifest if every file hashes to what it records and no file was added; else IntegrityError."""
    folder = Path(folder)
    manifest = read_manifest(folder)
    actual = sha256_tree(folder, exclude=(MANIFEST,))
    expected = manifest.get("files", {})
    problems = [f"{name}: sha256 mismatch" for name in expected if name in actual and actual[name] != expected[name]]
    problems += [f"{name}: missing" for name in expected if name not in actual]
    problems += [f"{name}: not in manifest" for name in actual if name not in expected]
    if problems:
        raise IntegrityError(f"artifact {folder} failed verification: " + "; ".join(problems))
    return manifest


def write_artifact(final: Path, populate, **manifest_fields) -> dict:
    """Create `final` atomically: populate(tmp) writes the PEFT files, then the manifest is added last."""
    with atomic_dir(final) as tmp:
        populate(tmp)
        manifest = build_manifest(tmp, **manifest_fields)
        write_manifest(tmp, manifest)
    return manifest


def artifact_id(manifest: dict) -> str:
    """Identity of an artifact's content: sha256 over its file hashes. Eval reports and promotion key on it."""
    from domainlm.hashing import sha256_bytes

    return sha256_bytes(json.dumps(manifest["files"], sort_keys=True))
