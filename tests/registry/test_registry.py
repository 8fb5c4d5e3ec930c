"""Registry: immutable stored copies, stages in its index (SQLite in the root, or PostgreSQL named by index.url: the
`reg` fixture runs each test on both), gates on promotion, audit trail, tamper and name refusal."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import threading

import pytest

from domainlm.artifacts import read_manifest
from domainlm.errors import IntegrityError
from domainlm.registry import NotFound, Registry, RegistryError, parse_ref
from domainlm.registry.gates import check_gates


def gates_of(vertical):
    from domainlm.verticals import get_vertical

    return get_vertical(vertical).gates


def report_for(entry, *, passing: bool, path):
    """An eval report (contract: docs/architecture.md) whose summary sits just above or below the real gates."""
    g = gates_of("medical")  # the only vertical these tests promote
    step = 0.05 if passing else -0.05          # the failing report misses the held-out NLL gate
    regression = (g.max_general_regression if g.max_general_regression is not None else 0.0) - 0.5
    summary = {"domain_gain": (g.min_domain_gain or 0.0) + 1.0, "general_regression": regression,
               "significant": True, "nll_reduction": g.min_nll_reduction + step,
               "nll_reduction_low": (g.min_nll_reduction_low or 0.0) + 0.05}
    if g.general_noninferiority:
        ni = g.general_noninferiority
        summary["general_noninferiority"] = {"metric": ni.metric, "margin": ni.margin, "n": ni.min_items,
                                             "diff": 0.1, "lower": 0.5 - ni.margin, "passed": True}
    if g.format_adherence:
        summary["format_adherence"] = {t: {"base": 90.0, "adapter": 89.0, "drop": 1.0}
                                       for t in g.format_adherence.tasks}
    report = {"subject": {"artifact_id": entry.artifact_id, "vertical": entry.vertical, "version": entry.version},
              "tasks": {}, "summary": summary,
              "gates": {"values": g.model_dump(mode="json"), "sha256": g.fingerprint()}}   # fixed before scoring
    path.write_text(json.dumps(report))
    return path


@pytest.fixture(params=["sqlite", "postgres"])
def reg(tmp_path, request):
    root = tmp_path / "registry"
    if request.param == "postgres":
        root.mkdir()
        (root / "index.url").write_text(request.getfixturevalue("postgres_url") + "\n")
    return Registry(root)


def test_register_stores_read_only_verified_copy(reg, random_adapters):
    entry = reg.register(random_adapters["medical"])
    assert (entry.vertical, entry.version, entry.stage) == ("medical", 1, "candidate")
    assert entry.path == (reg.root / "medical" / "1").resolve()
    assert sorted(p.name for p in entry.path.iterdir()) == ["adapter_config.json", "adapter_model.safetensors",
                                                             "manifest.json"]
    assert all(not (p.stat().st_mode & stat.S_IWUSR) for p in entry.path.iterdir())
    manifest = entry.verify()
    assert manifest["version"] == 1 and manifest["vertical"] == "medical"
    assert entry.base_sha256 == read_manifest(random_adapters["medical"])["base"]["weights_sha256"]
    # same content again → the same entry, not a new version
    assert reg.register(random_adapters["medical"]).version == 1
    assert [e.version for e in reg.list("medical")] == [1]
    assert reg.production("medical") is None
    with pytest.raises(NotFound, match="no production version"):
        reg.get("medical")


def test_vertical_mismatch_is_refused(reg, random_adapters):
    with pytest.raises(RegistryError, match="manifest says vertical 'medical'"):
        reg.register(random_adapters["medical"], vertical="petrochem")


def test_tampered_file_is_refused_everywhere(reg, random_adapters, tmp_path):
    entry = reg.register(random_adapters["petrochem"])
    weights = entry.path / "adapter_model.safetensors"
    os.chmod(weights, 0o644)
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0xFF
    weights.write_bytes(bytes(data))
    with pytest.raises(IntegrityError, match="adapter_model.safetensors: sha256 mismatch"):
        entry.verify()
    with pytest.raises(IntegrityError):
        reg.promote("petrochem", 1, force=True)
    assert "adapter_model.safetensors: sha256 mismatch" in reg.verify_all()["petrochem@1"]
    # a rewritten manifest that matches the tampered file still differs from the indexed artifact_id
    manifest = read_manifest(entry.path)
    from domainlm.hashing import sha256_file

    manifest["files"]["adapter_model.safetensors"] = sha256_file(weights)
    os.chmod(entry.path / "manifest.json", 0o644)
    (entry.path / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(IntegrityError, match="manifest was rewritten"):
        reg.verified("petrochem", 1)
    # a tampered source is refused at registration
    source = tmp_path / "copy"
    import shutil

    shutil.copytree(random_adapters["medical"], source)
    (source / "extra.bin").write_bytes(b"x")
    with pytest.raises(IntegrityError, match="extra.bin: not in manifest"):
        reg.register(source)


@pytest.mark.parametrize("name", ["../etc", "a/b", "Medical", "med ical", "..", "", ".hidden", "méd", "x" * 60,
                                  "medical\x00", "/abs"])
def test_names_cannot_escape_the_store(reg, name):
    with pytest.raises(RegistryError, match="invalid vertical name"):
        reg.get(name)
    with pytest.raises(RegistryError):
        parse_ref(f"{name}@1")


@pytest.mark.parametrize("version", ["0", "-1", "1.5", "../1", "abc", "1e3", True, 0])
def test_bad_versions_are_refused(reg, version):
    with pytest.raises(RegistryError, match="invalid version"):
        reg.get("medical", version)


def test_promotion_follows_gates_force_is_audited_and_rollback_restores(reg, random_adapters, tmp_path):
    v1 = reg.register(random_adapters["medical"])
    with pytest.raises(RegistryError, match="no eval report attached"):
        reg.promote("medical", 1)
    # a report about another artifact cannot be attached
    other = reg.register(random_adapters["petrochem"])
    with pytest.raises(RegistryError, match="report is for artifact"):
        reg.attach_report("medical", 1, report_for(other, passing=True, path=tmp_path / "other.json"))
    reg.attach_report("medical", 1, report_for(v1, passing=False, path=tmp_path / "fail.json"))
    with pytest.raises(RegistryError, match="does not meet min_nll_reduction"):
        reg.promote("medical", 1)
    forced = reg.promote("medical", 1, force=True, actor="test")
    assert forced.stage == "production" and reg.get("medical").version == 1
    force_events = [r for r in reg.audit_log("medical") if r["event"] == "force"]
    assert force_events and force_events[0]["actor"] == "test" and force_events[0]["detail"]["failures"]

    # version 2 with a passing report is promoted; v1 becomes archived
    import shutil

    src2 = tmp_path / "v2"
    shutil.copytree(random_adapters["medical"], src2)
    from domainlm.artifacts import write_manifest
    from domainlm.hashing import sha256_file

    os.chmod(src2 / "adapter_config.json", 0o644)
    cfg = json.loads((src2 / "adapter_config.json").read_text())
    cfg["lora_dropout"] = 0.01  # different content → a different artifact
    (src2 / "adapter_config.json").write_text(json.dumps(cfg))
    manifest = read_manifest(src2)
    manifest["files"]["adapter_config.json"] = sha256_file(src2 / "adapter_config.json")
    write_manifest(src2, manifest)
    v2 = reg.register(src2)
    assert v2.version == 2 and v2.artifact_id != v1.artifact_id
    reg.attach_report("medical", 2, report_for(v2, passing=True, path=tmp_path / "pass.json"))
    assert reg.check_promotion("medical", 2).passed
    reg.promote("medical", 2)
    assert [(e.version, e.stage) for e in reg.list("medical")] == [(1, "archived"), (2, "production")]
    back = reg.rollback("medical")
    assert back.version == 1 and reg.get("medical", 2).stage == "archived"
    with pytest.raises(RegistryError, match="no earlier production version"):
        reg.rollback("medical")
    events = [r["event"] for r in reg.audit_log("medical")][::-1]
    assert events == ["register", "attach_report", "force", "register", "attach_report", "promote", "rollback"]


def test_a_report_promotes_only_under_the_gates_it_fixed_before_scoring(reg, random_adapters, tmp_path, monkeypatch):
    entry = reg.register(random_adapters["medical"])
    report = json.loads(report_for(entry, passing=True, path=tmp_path / "r.json").read_text())
    for name, gates, problem in (("none", None, "records no gate fingerprint"),
                                 ("moved", {**report["gates"], "sha256": "0" * 64}, "gates changed after this eval")):
        (tmp_path / f"{name}.json").write_text(json.dumps({**report, "gates": gates}))
        reg.attach_report("medical", entry.version, tmp_path / f"{name}.json")
        decision = reg.check_promotion("medical", entry.version)
        assert not decision.passed and problem in decision.failures[0], decision.failures
        with pytest.raises(RegistryError, match=problem):
            reg.promote("medical", entry.version)
    # the vertical loosens its gates after seeing the numbers: the report that passed before no longer promotes
    reg.attach_report("medical", entry.version, report_for(entry, passing=True, path=tmp_path / "ok.json"))
    assert reg.check_promotion("medical", entry.version).passed
    g = gates_of("medical")
    monkeypatch.setattr(g, "min_nll_reduction", g.min_nll_reduction - 0.05)
    assert "gates changed after this eval" in reg.check_promotion("medical", entry.version).failures[0]


def test_check_gates_names_every_unmet_gate():
    class Gates:
        min_domain_gain = 2.0
        max_general_regression = 1.0
        require_significance = True
        min_nll_reduction = 0.05

    result = check_gates({"summary": {"domain_gain": 1.0, "general_regression": 3.0, "significant": False}}, Gates)
    assert not result.passed
    assert len(result.failures) == 4 and "nll_reduction missing" in " ".join(result.failures)
    ok = check_gates({"summary": {"domain_gain": 2.5, "general_regression": 0.2, "significant": True,
                                  "nll_reduction": 0.1}}, Gates)
    assert ok.passed and not ok.failures


def test_statistical_gates_name_what_failed_and_why():
    from domainlm.verticals.spec import FormatGate, Gates, NonInferiorityGate

    gates = Gates(min_domain_gain=None, require_significance=False, min_nll_reduction_low=0.10,
                  general_noninferiority=NonInferiorityGate(margin=2.0, min_items=600),
                  format_adherence=FormatGate(tasks=["pubmedqa"], max_drop=2.0))
    ni = {"metric": "gold_prob", "margin": 2.0, "n": 640, "diff": -0.4, "lower": -1.1, "passed": True}
    good = {"nll_reduction_low": 0.12, "general_noninferiority": ni,
            "format_adherence": {"pubmedqa": {"base": 92.0, "adapter": 91.0, "drop": 1.0}}}
    assert check_gates({"summary": good}, gates).passed

    def failures(**changes):
        return " | ".join(check_gates({"summary": {**good, **changes}}, gates).failures)

    assert "lower 95% bound -2.40 ≤ −2" in failures(general_noninferiority={**ni, "lower": -2.4, "passed": False})
    assert "scored 300 items" in failures(general_noninferiority={**ni, "n": 300})
    assert "margin 3.0" in failures(general_noninferiority={**ni, "margin": 3.0})   # tested under a wider margin
    assert "missing" in failures(general_noninferiority=None)
    assert "fell from 92.0% to 60.0%" in failures(format_adherence={"pubmedqa": {"base": 92.0, "adapter": 60.0,
                                                                                 "drop": 32.0}})
    assert "pubmedqa missing" in failures(format_adherence={})
    assert "nll_reduction_low=0.08" in failures(nll_reduction_low=0.08)


def test_the_safety_gate_reads_the_upper_bound_of_the_rate_change():
    from domainlm.verticals.spec import Gates, SafetyGate

    gates = Gates(min_domain_gain=None, require_significance=False,
                  safety=SafetyGate(tasks=["medsafetybench", "xstest_safe"], margin=5.0))

    def entry(metric, base, adapter, high):
        return {"metric": metric, "higher_is_better": False, "base": {"rate": base}, "adapter": {"rate": adapter},
                "change": {"points": 100 * (adapter - base), "ci_low": -1.0, "ci_high": high}}

    good = {"safety": {"medsafetybench": entry("harmful_compliance", 0.9, 0.6, -20.0),
                       "xstest_safe": entry("over_refusal", 0.02, 0.04, 4.9)}}
    result = check_gates({"summary": good}, gates)
    assert result.passed and result.checked["safety:xstest_safe"] == (4.9, 5.0)
    worse = {"safety": {**good["safety"], "xstest_safe": entry("over_refusal", 0.02, 0.10, 13.0)}}
    (failure,) = check_gates({"summary": worse}, gates).failures
    assert "safe requests refused rose from 2.0% to 10.0%" in failure and "upper 95% bound +13.0 > margin 5" in failure
    missing = check_gates({"summary": {"safety": {}}}, gates).failures
    assert len(missing) == 2 and "safety_tasks" in missing[0]


def test_gates_refuse_a_margin_wider_than_two_points_and_unknown_tasks():
    import yaml
    from pydantic import ValidationError

    from domainlm.verticals import get_vertical
    from domainlm.verticals.spec import NonInferiorityGate, VerticalSpec

    with pytest.raises(ValidationError, match="less than or equal to 2"):
        NonInferiorityGate(margin=2.5)
    spec = yaml.safe_load(get_vertical("medical").spec_path.read_text(encoding="utf-8"))
    spec["gates"]["report_only"] = ["pubmedqa_typo"]
    with pytest.raises(ValidationError, match="not in eval_suite: \\['pubmedqa_typo'\\]"):
        VerticalSpec.model_validate(spec)


def test_concurrent_registrations_get_distinct_versions(reg, random_adapters, tmp_path):
    import shutil

    sources = []
    for i in range(4):
        src = tmp_path / f"s{i}"
        shutil.copytree(random_adapters["petrochem"], src)  # same content in four places
        sources.append(src)
    results, errors = [], []

    def go(src):
        try:
            results.append(Registry(reg.root).register(src).version)
        except Exception as exc:  # noqa: BLE001 - collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=go, args=(s,)) for s in sources]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and results == [1, 1, 1, 1]  # identical content collapses to one version, no race
    assert len(reg.list("petrochem")) == 1


def test_cli_list_show_verify_promote_rollback(tmp_path, random_adapters):
    root = tmp_path / "reg"

    def cli(*args):
        return subprocess.run([sys.executable, "-m", "domainlm.cli", "registry", "--root", str(root), *args],
                              capture_output=True, text=True, timeout=120, check=False)

    assert cli("register", str(random_adapters["medical"])).returncode == 0
    listed = cli("list", "--json")
    assert listed.returncode == 0 and json.loads(listed.stdout)[0]["stage"] == "candidate"
    shown = cli("show", "medical@1")
    assert shown.returncode == 0 and json.loads(shown.stdout)["manifest"]["version"] == 1
    refused = cli("promote", "medical", "1")
    assert refused.returncode == 2 and "no eval report attached" in refused.stderr and "Traceback" not in refused.stderr
    assert cli("promote", "medical", "1", "--force").returncode == 0
    assert "production" in cli("list").stdout
    assert "force" in cli("audit").stdout
    assert cli("verify").returncode == 0
    bad = cli("show", "../../etc@1")
    assert bad.returncode == 2 and "invalid vertical name" in bad.stderr
    weights = root / "medical" / "1" / "adapter_model.safetensors"
    os.chmod(weights, 0o644)
    weights.write_bytes(b"tampered")
    verified = cli("verify")
    assert verified.returncode == 1 and "TAMPERED" in verified.stdout
    rollback = cli("rollback", "medical")
    assert rollback.returncode == 2 and "no earlier production version" in rollback.stderr


def _second_version(random_adapters, tmp_path):
    """The medical adapter with one config value changed: a different artifact of the same vertical."""
    import shutil

    from domainlm.artifacts import write_manifest
    from domainlm.hashing import sha256_file

    src = tmp_path / "v2"
    shutil.copytree(random_adapters["medical"], src)
    os.chmod(src / "adapter_config.json", 0o644)
    cfg = json.loads((src / "adapter_config.json").read_text())
    cfg["lora_dropout"] = 0.01
    (src / "adapter_config.json").write_text(json.dumps(cfg))
    manifest = read_manifest(src)
    manifest["files"]["adapter_config.json"] = sha256_file(src / "adapter_config.json")
    write_manifest(src, manifest)
    return src


def test_the_index_moves_to_postgres_and_every_opener_follows(tmp_path, random_adapters, postgres_url):
    root = tmp_path / "registry"
    local = Registry(root)
    local.register(random_adapters["medical"])
    local.register(_second_version(random_adapters, tmp_path))
    local.promote("medical", 1, force=True, actor="t")
    local.promote("medical", 2, force=True, actor="t")
    before = [(e.ref, e.stage) for e in local.list()]
    moved = subprocess.run([sys.executable, "-m", "domainlm.cli", "registry", "--root", str(root), "index-to",
                            postgres_url], capture_output=True, text=True, timeout=120)
    assert moved.returncode == 0 and "(2 versions)" in moved.stdout, moved.stderr
    shared = Registry(root)                           # any process opening the root now reads PostgreSQL
    assert shared.index.describe.startswith("postgresql") and [(e.ref, e.stage) for e in shared.list()] == before
    assert shared.rollback("medical").version == 1    # the production history came along
    assert shared.register(random_adapters["petrochem"]).version == 1
    events = [r["event"] for r in shared.audit_log()]
    assert events[:3] == ["register", "rollback", "move_index"] and events.count("force") == 2
    again = subprocess.run([sys.executable, "-m", "domainlm.cli", "registry", "--root", str(root), "index-to",
                            postgres_url], capture_output=True, text=True, timeout=120)
    assert again.returncode == 2 and "already at" in again.stderr and "Traceback" not in again.stderr
    (root / "index.url").write_text("  \n")
    with pytest.raises(RegistryError, match="empty"):
        Registry(root)


def test_promotions_racing_on_postgres_leave_one_production_version(tmp_path, random_adapters, postgres_url):
    root = tmp_path / "registry"
    root.mkdir()
    (root / "index.url").write_text(postgres_url)
    first = Registry(root)
    first.register(random_adapters["medical"])
    first.register(_second_version(random_adapters, tmp_path))
    errors = []

    def promote(version):
        try:
            Registry(root).promote("medical", version, force=True, actor=f"t{version}")
        except RegistryError as exc:   # "already production" is a fair answer to a racing duplicate
            errors.append(str(exc))

    threads = [threading.Thread(target=promote, args=(1 + i % 2,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    stages = [e.stage for e in first.list("medical")]
    assert stages.count("production") == 1 and all("already production" in e for e in errors)
