"""`domainlm registry list|show|verify|register|attach-report|promote|rollback|index-to|audit`."""

from __future__ import annotations

import getpass
import json


def register(subparsers) -> None:
    parser = subparsers.add_parser("registry", help="adapter versions: list, verify, promote, roll back")
    parser.add_argument("--root", default=None, help="registry folder (default $DOMAINLM_REGISTRY or "
                                                     "~/.cache/domainlm/registry)")
    sub = parser.add_subparsers(dest="registry_command", metavar="ACTION", required=True)

    p = sub.add_parser("list", help="every stored version with its stage")
    p.add_argument("vertical", nargs="?", default=None)
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=_list)

    p = sub.add_parser("show", help="one version (VERTICAL = production, VERTICAL@N = pinned): entry + manifest")
    p.add_argument("ref")
    p.set_defaults(func=_show)

    p = sub.add_parser("verify", help="re-hash stored artifacts; exit 1 if any file was changed")
    p.add_argument("vertical", nargs="?", default=None)
    p.set_defaults(func=_verify)

    p = sub.add_parser("register", help="verify an artifact folder and store it as the next candidate version")
    p.add_argument("artifact_dir")
    p.add_argument("--vertical", default=None, help="default: the manifest's vertical")
    p.set_defaults(func=_register)

    p = sub.add_parser("attach-report", help="attach the eval report of a version (needed to promote)")
    p.add_argument("vertical")
    p.add_argument("version")
    p.add_argument("report")
    p.set_defaults(func=_attach)

    p = sub.add_parser("promote", help="make a version production if its eval report meets the vertical's gates")
    p.add_argument("vertical")
    p.add_argument("version")
    p.add_argument("--force", action="store_true", help="promote even if gates fail (recorded in the audit log)")
    p.set_defaults(func=_promote)

    p = sub.add_parser("rollback", help="production returns to the previous production version")
    p.add_argument("vertical")
    p.set_defaults(func=_rollback)

    p = sub.add_parser("index-to", help="move this root's index into a shared database (postgresql://…): every "
                                        "machine opening the root uses it from then on")
    p.add_argument("url")
    p.set_defaults(func=_index_to)

    p = sub.add_parser("audit", help="registry events (register, promote, force, rollback), newest first")
    p.add_argument("vertical", nargs="?", default=None)
    p.add_argument("--limit", type=int, default=50)
    p.set_defaults(func=_audit)


def _registry(args):
    from domainlm.registry import Registry

    return Registry(args.root)


def _actor() -> str:
    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):  # no passwd entry in some containers
        return "cli"


def _list(args) -> int:
    entries = _registry(args).list(args.vertical)
    if args.json:
        print(json.dumps([e.to_dict() for e in entries], indent=2))
        return 0
    if not entries:
        print("registry is empty")
        return 0
    print(f"{'vertical':<14}{'version':>8}  {'stage':<11}{'artifact':<14}{'report':<8}created")
    for e in entries:
        print(f"{e.vertical:<14}{e.version:>8}  {e.stage:<11}{e.artifact_id[:12]:<14}"
              f"{'yes' if e.report_path else 'no':<8}{e.created_at}")
    return 0


def _show(args) -> int:
    from domainlm.registry import parse_ref

    vertical, version = parse_ref(args.ref)
    entry = _registry(args).get(vertical, version)
    manifest = entry.verify()
    print(json.dumps({"entry": entry.to_dict(), "manifest": manifest}, indent=2, ensure_ascii=False))
    return 0


def _verify(args) -> int:
    results = _registry(args).verify_all(args.vertical)
    for ref, problem in results.items():
        print(f"{ref}: {'ok' if problem is None else 'TAMPERED: ' + problem}")
    return 1 if any(results.values()) else 0


def _register(args) -> int:
    entry = _registry(args).register(args.artifact_dir, args.vertical, actor=_actor())
    print(f"registered {entry.ref} ({entry.stage}) at {entry.path}")
    return 0


def _attach(args) -> int:
    entry = _registry(args).attach_report(args.vertical, args.version, args.report, actor=_actor())
    print(f"attached report to {entry.ref}: {entry.report_path}")
    return 0


def _promote(args) -> int:
    entry = _registry(args).promote(args.vertical, args.version, force=args.force, actor=_actor())
    print(f"{entry.ref} is production{' (forced)' if args.force else ''}")
    return 0


def _rollback(args) -> int:
    entry = _registry(args).rollback(args.vertical, actor=_actor())
    print(f"{entry.vertical} production is now {entry.ref}")
    return 0


def _audit(args) -> int:
    for row in _registry(args).audit_log(args.vertical, args.limit):
        version = f"@{row['version']}" if row["version"] is not None else ""
        print(f"{row['ts']}  {row['event']:<13}{row['vertical']}{version:<6} by {row['actor']}  "
              f"{json.dumps(row['detail'], ensure_ascii=False)}")
    return 0


def _index_to(args) -> int:
    registry = _registry(args)
    source = registry.index.describe
    copied = registry.move_index(args.url, actor=_actor())
    print(f"moved the registry index of {registry.root} from {source} to {registry.index.describe} ({copied} "
          f"versions); {registry.root}/index.url now points there")
    return 0
