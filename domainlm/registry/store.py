"""The registry: immutable `<root>/<vertical>/<version>/` artifact copies + the SQLite index of their stages.

    reg = Registry()                      # root = DOMAINLM_REGISTRY or ~/.cache/domainlm/registry
    entry = reg.register("runs/medical/adapter")          # verified, copied, version = next int, candidate
    reg.attach_report("medical", entry.version, "report.json")
    reg.promote("medical", entry.version)                  # gates from the vertical's definition
    reg.rollback("medical")                                # production → the previous production version

Stored files are made read-only and their hashes are checked again before any use (`Entry.verify()`,
`Registry.verified(...)`), so a file changed on disk after registration is refused.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import stat
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

from sqlalchemy import text

from domainlm import log, paths
from domainlm.artifacts import MANIFEST, artifact_id, verify_artifact, write_manifest
from domainlm.errors import IntegrityError
from domainlm.atomic import atomic_dir, atomic_write_bytes
from domainlm.registry import gates as gates_mod
from domainlm.registry.index import COLUMNS, Index, now
from domainlm.state.schema import registry_metadata, versions
from domainlm.registry.names import NotFound, RegistryError, check_version, check_vertical, parse_ref

logger = log.get("registry")

STAGES = ("candidate", "production", "archived")


@dataclass(frozen=True)
class Entry:
    vertical: str
    version: int
    stage: str
    path: Path
    artifact_id: str
    created_at: str
    report_path: Path | None
    base_model_id: str | None
    base_sha256: str | None

    @property
    def ref(self) -> str:
        """The pinned model name the gateway serves, e.g. 'medical@3'."""
        return f"{self.vertical}@{self.version}"

    def verify(self) -> dict:
        """Re-hash every file; IntegrityError if anything changed since registration. Returns the manifest."""
        manifest = verify_artifact(self.path)
        if artifact_id(manifest) != self.artifact_id:
            raise IntegrityError(f"{self.path}: manifest was rewritten after registration "
                                 f"(artifact_id {artifact_id(manifest)[:12]} ≠ indexed {self.artifact_id[:12]})")
        return manifest

    def to_dict(self) -> dict:
        d = asdict(self)
        d["path"] = str(self.path)
        d["report_path"] = str(self.report_path) if self.report_path else None
        return d


INDEX_POINTER = "index.url"   # in a registry root: the database URL of its index (absent: index.sqlite)


def index_location(root: Path) -> Path | str:
    """Where a registry root's index lives: the URL `index.url` names, else `index.sqlite` in the root."""
    pointer = root / INDEX_POINTER
    try:
        url = pointer.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        return root / "index.sqlite"
    if not url:
        raise RegistryError(f"{pointer}: empty; it should hold the index database URL (postgresql://…)")
    return url


class Registry:
    def __init__(self, root: str | Path | None = None):
        self.root = Path(root).expanduser() if root is not None else paths.registry_dir()
        self.root.mkdir(parents=True, exist_ok=True)
        self.index = Index(index_location(self.root))

    def move_index(self, url: str, actor: str = "cli") -> int:
        """Copy this root's index into the database at `url` (empty there, or already this very index) and point
        the root at it (`index.url`): every process opening the root uses that database from then on. Returns the
        versions copied. The SQLite file stays, unused, as a backup."""
        target = Index(url)
        if target.describe == self.index.describe:
            raise RegistryError(f"the index is already at {target.describe}")
        with self._lock(), self.index.reader() as source, target.transaction() as db:
            present = db.execute(text("SELECT COUNT(*) FROM versions")).scalar()
            if present:
                raise RegistryError(f"{target.describe} already holds a registry index ({present} versions): "
                                    "point this root at it by hand only if it is this registry's")
            copied = 0
            for table in ("versions", "production_history", "audit"):
                rows = [dict(r) for r in source.execute(text(f"SELECT * FROM {table}")).mappings()]
                if rows:
                    db.execute(registry_metadata.tables[table].insert(), rows)
                copied += len(rows) if table == "versions" else 0
            if target.db.dialect == "postgresql":   # ids were copied as they were: move the sequences past them
                for table in ("production_history", "audit"):
                    db.execute(text(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                                    f"COALESCE((SELECT MAX(id) FROM {table}), 0) + 1, false)"))
            Index.audit(db, actor=actor, event="move_index", vertical="*", version=None,
                        source=self.index.describe, target=target.describe, versions=copied)
            atomic_write_bytes(self.root / INDEX_POINTER, (url.strip() + "\n").encode())
        self.index = target
        return copied

    # --- paths -----------------------------------------------------------------------------------------------
    def _version_dir(self, vertical: str, version: int) -> Path:
        folder = (self.root / check_vertical(vertical) / str(check_version(version))).resolve()
        if not folder.is_relative_to(self.root.resolve()):  # belt and braces: names are validated above
            raise RegistryError(f"refusing a path outside the registry: {folder}")
        return folder

    def _entry(self, row: dict) -> Entry:
        values = {k: row[k] for k in COLUMNS}
        values["path"] = self._version_dir(row["vertical"], row["version"])
        values["report_path"] = Path(row["report_path"]) if row["report_path"] else None
        return Entry(**values)

    @contextmanager
    def _lock(self):
        """One writer at a time across processes (version numbers, folder creation)."""
        with open(self.root / ".lock", "a+") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    # --- reads -----------------------------------------------------------------------------------------------
    def list(self, vertical: str | None = None) -> list[Entry]:
        if vertical is not None:
            check_vertical(vertical)
        return [self._entry(r) for r in self.index.rows(vertical)]

    def verticals(self) -> list[str]:
        return sorted({e.vertical for e in self.list()})

    def get(self, vertical: str, version: int | None = None) -> Entry:
        """A pinned version, or (version None) the production one; NotFound when there is none."""
        check_vertical(vertical)
        if version is None:
            entry = self.production(vertical)
            if entry is None:
                known = [e.version for e in self.list(vertical)]
                hint = f"versions {known} exist; promote one" if known else "nothing is registered for it"
                raise NotFound(f"'{vertical}' has no production version ({hint})")
            return entry
        row = self.index.row(vertical, check_version(version))
        if row is None:
            raise NotFound(f"'{vertical}@{version}' is not in the registry at {self.root}")
        return self._entry(row)

    def production(self, vertical: str) -> Entry | None:
        row = self.index.production_row(check_vertical(vertical))
        return self._entry(row) if row else None

    def verified(self, vertical: str, version: int | None = None) -> Entry:
        """get() plus a full hash check: what serving and eval call before loading an adapter."""
        entry = self.get(vertical, version)
        entry.verify()
        return entry

    def audit_log(self, vertical: str | None = None, limit: int = 100) -> list[dict]:
        return self.index.audit_rows(vertical, limit)

    # --- writes ----------------------------------------------------------------------------------------------
    def register(self, artifact_dir: str | Path, vertical: str | None = None, actor: str = "cli") -> Entry:
        """Verify the artifact, copy it to `<root>/<vertical>/<next version>/` atomically, stage candidate.

        Registering content that is already stored for the vertical returns the existing entry (same artifact_id).
        """
        source = Path(artifact_dir)
        manifest = verify_artifact(source)
        declared = manifest.get("vertical")
        vertical = check_vertical(vertical or declared)
        if declared and declared != vertical:
            raise RegistryError(f"{source}: the manifest says vertical '{declared}', not '{vertical}'")
        aid = artifact_id(manifest)
        with self._lock():
            for entry in self.list(vertical):
                if entry.artifact_id == aid:
                    logger.info("already registered", vertical=vertical, version=entry.version)
                    return entry
            with self.index.reader() as db:
                version = self.index.next_version(db, vertical)
            existing = [int(p.name) for p in (self.root / vertical).glob("*") if p.name.isdigit()]
            version = max([version, *[v + 1 for v in existing]])  # never reuse a folder left by a crash
            final = self._version_dir(vertical, version)
            with atomic_dir(final) as tmp:
                for name in manifest["files"]:
                    target = tmp / name
                    target.parent.mkdir(parents=True, exist_ok=True)
                    shutil.copy2(source / name, target)
                write_manifest(tmp, {**manifest, "vertical": vertical, "version": version})
                verify_artifact(tmp)  # the copy is what we index: check it, not only the source
                _make_read_only(tmp)
            base = manifest.get("base") or {}
            row = {"vertical": vertical, "version": version, "stage": "candidate", "artifact_id": aid,
                   "created_at": manifest.get("created_at") or "", "report_path": None,
                   "base_model_id": base.get("model_id"), "base_sha256": base.get("weights_sha256")}
            with self.index.transaction() as db:
                db.execute(versions.insert(), row)
                self.index.audit(db, actor=actor, event="register", vertical=vertical, version=version,
                                 artifact_id=aid, source=str(source.resolve()))
        logger.info("registered", vertical=vertical, version=version, artifact_id=aid[:12])
        return self.get(vertical, version)

    def attach_report(self, vertical: str, version: int, report_path: str | Path, actor: str = "cli") -> Entry:
        """Keep a copy of the eval report beside the store; it must be about this exact artifact."""
        entry = self.get(vertical, version)
        report = gates_mod.read_report(report_path)
        if gates_mod.report_artifact_id(report) != entry.artifact_id:
            raise RegistryError(f"{report_path}: report is for artifact {gates_mod.report_artifact_id(report)[:12]}, "
                                f"not {entry.ref} ({entry.artifact_id[:12]})")
        stored = self.root / "reports" / entry.vertical / f"{entry.version}.json"
        atomic_write_bytes(stored, Path(report_path).read_bytes())
        with self.index.transaction() as db:
            db.execute(text("UPDATE versions SET report_path = :p WHERE vertical = :v AND version = :n"),
                       {"p": str(stored), "v": entry.vertical, "n": entry.version})
            self.index.audit(db, actor=actor, event="attach_report", vertical=entry.vertical, version=entry.version,
                             report=str(Path(report_path).resolve()), summary=report["summary"])
        return self.get(entry.vertical, entry.version)

    def check_promotion(self, vertical: str, version: int) -> gates_mod.GateResult:
        """What promote() would decide, without changing anything."""
        entry = self.get(vertical, version)
        if entry.report_path is None:
            hint = f"domainlm registry attach-report {entry.vertical} {entry.version} REPORT.json"
            return gates_mod.GateResult(False, [f"{entry.ref} has no eval report attached ({hint})"])
        report = gates_mod.read_report(entry.report_path)
        if gates_mod.report_artifact_id(report) != entry.artifact_id:
            return gates_mod.GateResult(False, ["the attached report is for a different artifact"])
        gates = gates_mod.load_gates(entry.vertical)
        moved = gates_mod.gates_moved(report, gates)
        if moved:
            return gates_mod.GateResult(False, [moved])
        return gates_mod.check_gates(report, gates)

    def promote(self, vertical: str, version: int, force: bool = False, actor: str = "cli") -> Entry:
        """Make a version production (the previous one becomes archived). Gates must pass unless force=True."""
        entry = self.get(vertical, version)
        entry.verify()
        if entry.stage == "production":
            raise RegistryError(f"{entry.ref} is already production")
        try:
            decision = self.check_promotion(vertical, entry.version)
        except RegistryError as exc:  # e.g. unknown vertical definition, unreadable report
            if not force:
                raise
            decision = gates_mod.GateResult(False, [str(exc)])
        if not decision.passed and not force:
            raise RegistryError(f"cannot promote {entry.ref}: " + "; ".join(decision.failures)
                                + " (use --force to override; it is recorded in the audit log)")
        with self._lock(), self.index.transaction() as db:
            previous = db.execute(text("SELECT version FROM versions WHERE vertical = :v AND stage = 'production'"),
                                  {"v": vertical}).mappings().first()
            if previous:
                db.execute(text("UPDATE versions SET stage = 'archived' WHERE vertical = :v AND version = :n"),
                           {"v": vertical, "n": previous["version"]})
            db.execute(text("UPDATE versions SET stage = 'production' WHERE vertical = :v AND version = :n"),
                       {"v": vertical, "n": entry.version})
            db.execute(text("INSERT INTO production_history (vertical, version, ts) VALUES (:v, :n, :ts)"),
                       {"v": vertical, "n": entry.version, "ts": now()})
            event = "force" if not decision.passed else "promote"
            self.index.audit(db, actor=actor, event=event, vertical=vertical, version=entry.version,
                             previous=previous["version"] if previous else None, gates=decision.checked,
                             failures=decision.failures, artifact_id=entry.artifact_id)
        logger.info("promoted", vertical=vertical, version=entry.version, forced=not decision.passed)
        return self.get(vertical, entry.version)

    def rollback_target(self, vertical: str) -> Entry:
        """The version rollback() would make production (the previous production one); RegistryError if none."""
        current = self.get(check_vertical(vertical))
        with self.index.reader() as db:
            history = list(db.execute(text(
                "SELECT version FROM production_history WHERE vertical = :v AND active = 1 ORDER BY id"),
                {"v": vertical}).scalars())
        while history and history[-1] == current.version:
            history.pop()
        if not history:
            raise RegistryError(f"'{vertical}' has no earlier production version to roll back to "
                                f"(current: {current.ref})")
        return self.get(vertical, history[-1])

    def rollback(self, vertical: str, actor: str = "cli") -> Entry:
        """Production goes back to the version that was production before the current one."""
        with self._lock():
            current = self.get(check_vertical(vertical))
            target = self.rollback_target(vertical)
            target.verify()
            with self.index.transaction() as db:
                db.execute(text("UPDATE versions SET stage = 'archived' WHERE vertical = :v AND version = :n"),
                           {"v": vertical, "n": current.version})
                db.execute(text("UPDATE versions SET stage = 'production' WHERE vertical = :v AND version = :n"),
                           {"v": vertical, "n": target.version})
                top = db.execute(text("SELECT MAX(id) FROM production_history WHERE vertical = :v AND active = 1 "
                                      "AND version = :n"), {"v": vertical, "n": current.version}).scalar()
                if top is not None:
                    db.execute(text("UPDATE production_history SET active = 0 WHERE id = :id"), {"id": top})
                self.index.audit(db, actor=actor, event="rollback", vertical=vertical, version=target.version,
                                 previous=current.version)
        logger.info("rolled back", vertical=vertical, version=target.version, previous=current.version)
        return self.get(vertical, target.version)

    def verify_all(self, vertical: str | None = None) -> dict[str, str | None]:
        """{'medical@3': None (ok) or the integrity problem} for every stored version."""
        results = {}
        for entry in self.list(vertical):
            try:
                entry.verify()
                results[entry.ref] = None
            except IntegrityError as exc:
                results[entry.ref] = str(exc)
        return results


def _make_read_only(folder: Path) -> None:
    """Stored artifacts are immutable: files lose their write bits (the hash check still guards against root)."""
    for p in folder.rglob("*"):
        if p.is_file():
            os.chmod(p, stat.S_IRUSR | stat.S_IRGRP | stat.S_IROTH)



def resolve_artifact(source: str, registry: Registry | None = None) -> Path:
    """An artifact folder as given, or a registry ref (`medical` = production, `medical@3` = pinned), verified."""
    path = Path(source).expanduser()
    if path.is_dir():
        return path
    vertical, version = parse_ref(source)
    return (registry or Registry()).verified(vertical, version).path


__all__ = ["MANIFEST", "STAGES", "Entry", "NotFound", "Registry", "RegistryError", "resolve_artifact"]
