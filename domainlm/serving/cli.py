"""`domainlm serve` (the gateway + its engines) and `domainlm keys create|list|revoke`."""

from __future__ import annotations

import json


def register_serve(subparsers) -> None:
    parser = subparsers.add_parser("serve", help="run the OpenAI-compatible gateway and its vLLM / hf engines")
    parser.add_argument("--config", default=None, help="serve config YAML (e.g. configs/serve/local.yaml); "
                                                       "default: built-in defaults (embedded model, engine auto)")
    parser.add_argument("overrides", nargs="*", help="key.path=value overrides, e.g. gateway.port=9000")
    parser.add_argument("--host", default=None, help="override gateway.host")
    parser.add_argument("--port", type=int, default=None, help="override gateway.port")
    parser.add_argument("--check", action="store_true", help="validate the config and print it; start nothing")
    parser.set_defaults(func=_serve)


def load_serve_config(path: str | None, overrides: list[str]):
    from domainlm.config import apply_overrides, load_config, validate
    from domainlm.serving.config import ServeConfig

    if path:
        return load_config(path, ServeConfig, overrides)
    data: dict = {}
    apply_overrides(data, overrides)
    return validate(ServeConfig, data, "(defaults)")


def _serve(args) -> int:
    config = load_serve_config(args.config, args.overrides)
    if args.host:
        config.gateway.host = args.host
    if args.port is not None:
        config.gateway.port = args.port
    if args.check:
        print(json.dumps(config.model_dump(), indent=2))
        return 0
    import uvicorn

    from domainlm.serving.app import create_app

    app = create_app(config)
    print(f"domainlm gateway on http://{config.gateway.host}:{config.gateway.port} (OpenAI base URL: "
          f"http://{config.gateway.host}:{config.gateway.port}/v1)", flush=True)
    uvicorn.run(app, host=config.gateway.host, port=config.gateway.port, log_level="warning", access_log=False,
                loop="auto", http="auto", timeout_graceful_shutdown=30)
    return 0


def register_keys(subparsers) -> None:
    parser = subparsers.add_parser("keys", help="gateway API keys: create, list, revoke (stored hashed)")
    _state_arguments(parser)
    sub = parser.add_subparsers(dest="keys_command", metavar="ACTION", required=True)

    p = sub.add_parser("create", help="create a key; it is printed once and only its hash is stored")
    p.add_argument("--name", required=True, help="who or what uses the key")
    p.add_argument("--scopes", required=True,
                   help="comma-separated: vertical names, '*' (all verticals), 'base', 'admin'")
    p.add_argument("--rpm", type=int, default=None, help="requests per minute (default: the gateway's)")
    p.add_argument("--tpm", type=int, default=None, help="tokens per minute (default: the gateway's)")
    p.set_defaults(func=_keys_create)

    p = sub.add_parser("list", help="keys with scopes, limits and revocation time (never the secrets)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=_keys_list)

    p = sub.add_parser("revoke", help="revoke a key by id (every replica refuses it within a second; at once "
                                      "with --redis)")
    p.add_argument("key_id")
    p.set_defaults(func=_keys_revoke)


def _state_arguments(parser) -> None:
    parser.add_argument("--db", default=None, help="the gateway's state database: a SQLite path (default "
                                                   "$DOMAINLM_HOME/gateway.sqlite) or postgresql://… (the serve "
                                                   "config's state.url)")
    parser.add_argument("--redis", default=None, help="the replicas' Redis (the serve config's state.redis): the "
                                                      "change is broadcast to every replica at once")


def _announce(args, kind: str, **fields) -> None:
    if args.redis:
        from domainlm.serving.broadcast import publish_once

        reached = publish_once(args.redis, kind, **fields)
        print(f"broadcast to {reached} gateway replica(s)" if reached >= 0 else
              "broadcast not sent (Redis unreachable): replicas see the change within a second by polling")


def _store(args):
    from domainlm.serving.auth import KeyStore

    store = KeyStore(args.db)
    store.on_revoke = lambda key_id: _announce(args, "key_revoked", id=key_id)
    return store


def _keys_create(args) -> int:
    plaintext, record = _store(args).create(args.name, args.scopes.split(","), args.rpm, args.tpm)
    print(plaintext)
    print(f"created key {record.id} ({record.name}) scopes={','.join(record.scopes)}: store it now, it is not "
          "shown again", flush=True)
    return 0


def _keys_list(args) -> int:
    keys = _store(args).list()
    if args.json:
        print(json.dumps([k.to_dict() for k in keys], indent=2))
        return 0
    print(f"{'id':<10}{'name':<24}{'scopes':<32}{'rpm':>7}{'tpm':>9}  status")
    for k in keys:
        state = f"revoked {k.revoked_at}" if k.revoked_at else "active"
        print(f"{k.id:<10}{k.name[:23]:<24}{','.join(k.scopes)[:31]:<32}{k.rpm or '-':>7}{k.tpm or '-':>9}  {state}")
    return 0


def _keys_revoke(args) -> int:
    record = _store(args).revoke(args.key_id)
    print(f"revoked {record.id} ({record.name}) at {record.revoked_at}")
    return 0


def register_vertical_switch(subparsers) -> None:
    parser = subparsers.add_parser("vertical", help="emergency switch: suspend or resume a vertical on every "
                                                    "gateway replica (503 with the reason, within a second)")
    _state_arguments(parser)
    parser.add_argument("--audit-db", default=None, help="audit database (default: the same as --db)")
    sub = parser.add_subparsers(dest="vertical_command", metavar="ACTION", required=True)
    p = sub.add_parser("suspend", help="stop serving a vertical: its requests get a 503 naming the reason")
    p.add_argument("name", help="the vertical, e.g. medical")
    p.add_argument("--reason", required=True, help="why (shown to callers in the 503 and kept in the audit log)")
    p.set_defaults(func=_vertical_switch, action="suspend")
    p = sub.add_parser("resume", help="serve a suspended vertical again")
    p.add_argument("name")
    p.set_defaults(func=_vertical_switch, action="resume", reason=None)
    p = sub.add_parser("status", help="suspended verticals and the latest switches")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=_vertical_status)


def _switch_store(args):
    from domainlm.serving.auth import default_db
    from domainlm.serving.suspension import SuspensionStore

    store = SuspensionStore(args.db or default_db())
    store.on_switch = lambda vertical: _announce(args, "vertical_switched", vertical=vertical)
    return store


def _vertical_switch(args) -> int:
    import getpass
    from functools import partial

    from domainlm.serving import audit
    from domainlm.serving.suspension import switch

    store = _switch_store(args)
    actor = f"cli:{getpass.getuser()}"
    record = switch(store, args.action, args.name, actor, partial(audit.append, args.audit_db or store.db),
                    args.reason)
    if args.action == "suspend":
        print(f"suspended {record.vertical} since {record.suspended_at}: {record.reason} (every replica within "
              f"{store.max_age_s:g} s; roll the adapter back with `domainlm registry rollback {record.vertical}`)")
    else:
        print(f"resumed {record.vertical} (suspended since {record.suspended_at}: {record.reason})")
    return 0


def _vertical_status(args) -> int:
    store = _switch_store(args)
    active, events = store.active(), store.events(20)
    if args.json:
        print(json.dumps({"suspended": {v: s.to_dict() for v, s in active.items()}, "events": events}, indent=2))
        return 0
    if not active:
        print("no vertical is suspended")
    for vertical, s in sorted(active.items()):
        print(f"{vertical:<12} suspended since {s.suspended_at} by {s.actor}: {s.reason}")
    for e in events[:10]:
        print(f"  {e['ts']}  {e['action']:<8}{e['vertical']:<12}{e['actor']:<20}{e['reason'] or ''}")
    return 0
