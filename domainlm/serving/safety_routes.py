"""Safety routes: the review queue of held answers (reviewers: scope `admin`; the asking key reads its own), and
the Alertmanager webhook receiver (风险监测预警 → 应急响应): every alert lands in the audit trail, and a firing alert
labelled `domainlm_action: suspend` with a `vertical` label pulls that vertical's emergency switch.

    GET  /admin/reviews?status=pending           held answers (pending | released | rejected | all)
    POST /admin/reviews/{id}/release|reject      a reviewer's decision {note}, audited
    GET  /v1/reviews/{id}                        the asking key: status, and the answer once released
    POST /admin/alerts                           Alertmanager webhook_config target (an admin key as bearer token)
"""

from __future__ import annotations

import asyncio
import secrets

from fastapi import APIRouter, Request

from domainlm.serving.admin import AdminDep, actor
from domainlm.serving.errors import APIError
from domainlm.serving.protocol import AlertmanagerWebhook, ReviewDecision
from domainlm.serving.review import ReviewError
from domainlm.serving.routes import ERRORS, KeyDep, service_of
from domainlm.serving.suspension import SuspensionError, switch

router = APIRouter(tags=["safety"], responses=ERRORS)
MAX_SUMMARY = 300


@router.get("/admin/reviews")
async def reviews(request: Request, key: AdminDep, status: str = "pending", limit: int = 100):
    if status not in ("pending", "released", "rejected", "all"):
        raise APIError(400, "status must be pending, released, rejected or all", param="status")
    held = await asyncio.to_thread(service_of(request).reviews.list, None if status == "all" else status,
                                   max(1, min(limit, 1000)))
    return {"reviews": [h.to_dict() for h in held]}


@router.post("/admin/reviews/{review_id}/{decision}")
async def decide(review_id: str, decision: str, request: Request, key: AdminDep, body: ReviewDecision | None = None):
    service = service_of(request)
    if decision not in ("release", "reject"):
        raise APIError(404, f"unknown review action '{decision}': use release or reject", code="not_found")
    try:
        held = await asyncio.to_thread(service.reviews.decide, review_id, decision, actor(key),
                                       body.note if body else None)
    except ReviewError as exc:
        raise APIError(404 if "no held answer" in str(exc) else 409, str(exc), code="review_refused") from None
    service.audit.record(request_id=f"review-{secrets.token_hex(6)}", key_id=key.id,
                         endpoint=f"admin/reviews/{decision}", model=held.model, vertical=held.vertical, status=200,
                         policy={"review_id": held.id, "rule": held.rule, "decision": held.status,
                                 "note": held.note})
    return {"review": held.to_dict(with_answer=False)}


@router.get("/v1/reviews/{review_id}")
async def review_status(review_id: str, request: Request, key: KeyDep):
    held = await asyncio.to_thread(service_of(request).reviews.get, review_id)
    if held is None or (held.key_id != key.id and not key.admin):   # another key's review reads as unknown
        raise APIError(404, f"no held answer with id '{review_id}' for this key", code="not_found")
    out = {"id": held.id, "object": "review", "status": held.status, "created_at": held.created_at,
           "decided_at": held.decided_at}
    if held.status == "released":
        out["answer"] = held.answer
    return out


@router.post("/admin/alerts")
async def alerts(body: AlertmanagerWebhook, request: Request, key: AdminDep):
    """One audit row per alert; `domainlm_action: suspend` + `vertical` on a firing alert suspends the vertical."""
    from domainlm.verticals import list_verticals

    service = service_of(request)
    known = set(list_verticals())
    suspended = []
    for alert in body.alerts:
        name = alert.labels.get("alertname", "unnamed")[:100]
        vertical = alert.labels.get("vertical")
        vertical = vertical if vertical in known else None
        summary = " ".join((alert.annotations.get("summary") or alert.annotations.get("description") or "").split())
        service.metrics.alerts.labels(alertname=name, status=alert.status).inc()
        service.audit.record(request_id=f"alert-{secrets.token_hex(6)}", key_id=key.id, endpoint="admin/alerts",
                             vertical=vertical, status=200,
                             policy={"alert": name, "status": alert.status, "severity": alert.labels.get("severity"),
                                     "summary": summary[:MAX_SUMMARY], "fingerprint": alert.fingerprint,
                                     "starts_at": alert.startsAt, "receiver": body.receiver})
        if alert.status == "firing" and vertical and alert.labels.get("domainlm_action") == "suspend" \
                and service.suspensions.get(vertical) is None:
            reason = f"alert {name}: {summary}"[:500] if summary else f"alert {name}"
            try:
                await asyncio.to_thread(switch, service.suspensions, "suspend", vertical, f"alert:{name}",
                                        service.audit.record_now, reason)
            except SuspensionError as exc:
                raise APIError(400, str(exc), param="alerts") from None
            suspended.append(vertical)
    return {"received": len(body.alerts), "suspended": suspended}
