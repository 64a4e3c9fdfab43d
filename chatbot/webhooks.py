"""Webhooks: events POSTed as JSON to the tenant's endpoints, signed, delivered by Celery with
retries, logged per delivery, and guarded against SSRF like every user-supplied URL.

Signature: `X-Parley-Signature: t=<unix time>,v1=<hex HMAC-SHA256 of "<t>.<body>" with the
endpoint's secret>` — the timestamp is signed too, so a captured request cannot be replayed
later (receivers reject old timestamps). See docs/webhooks.md for a verification example.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import time
import uuid
from datetime import datetime
from typing import Any

import httpx
from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.serializers.json import DjangoJSONEncoder
from django.db import connection, transaction
from django.utils import timezone

from chatbot.models import Webhook, WebhookDelivery
from knowledge.web.fetcher import PinnedTransport
from knowledge.web.ssrf import BlockedURL, aresolve_and_check, check_syntax

log = logging.getLogger(__name__)

TIMEOUT = 10.0  # seconds per attempt

RESPONSE_KEPT = 2000  # characters of the receiver's answer kept in the log
USER_AGENT = "Parley-Webhooks/1.0"


def sign(secret: str, timestamp: int, body: bytes) -> str:
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"t={timestamp},v1={mac.hexdigest()}"


def verify(secret: str, header: str, body: bytes, *, tolerance: int = 300) -> bool:
    """What a receiver does (also used by the tests): check the HMAC and the timestamp."""
    parts = dict(item.split("=", 1) for item in header.split(",") if "=" in item)
    try:
        timestamp = int(parts["t"])
    except (KeyError, ValueError):
        return False
    if abs(time.time() - timestamp) > tolerance:
        return False
    expected = sign(secret, timestamp, body).split("v1=", 1)[1]
    return hmac.compare_digest(expected, parts.get("v1", ""))


def validate_url(url: str) -> None:
    """Syntax and scheme at save time; addresses are checked again at each delivery (DNS can
    change between the two)."""
    try:
        check_syntax(url)
    except BlockedURL as exc:
        raise ValidationError({"url": str(exc)}) from None


def emit(event: str, data: dict[str, Any]) -> int:
    """Queue `event` for every active endpoint subscribed to it, once the current transaction
    commits. Runs in the tenant's schema; returns the number of deliveries queued."""
    if event not in Webhook.Event.values:
        raise ValueError(f"unknown webhook event {event!r}")
    hooks = [h for h in Webhook.objects.filter(is_active=True) if event in h.events]
    if not hooks:
        return 0
    payload = {
        "id": str(uuid.uuid4()),
        "event": event,
        "created_at": timezone.now().isoformat(),
        "tenant": connection.schema_name,
        "data": json.loads(json.dumps(data, cls=DjangoJSONEncoder)),
    }
    deliveries = WebhookDelivery.objects.bulk_create(
        WebhookDelivery(webhook=hook, event=event, payload=payload) for hook in hooks
    )
    schedule([d.pk for d in deliveries])
    return len(deliveries)


def schedule(delivery_ids: list[int]) -> None:
    from chatbot.celery import send_in_schema
    from chatbot.tasks import deliver_webhook

    schema = connection.schema_name
    for delivery_id in delivery_ids:
        transaction.on_commit(
            lambda delivery_id=delivery_id: send_in_schema(deliver_webhook, schema, delivery_id)
        )


def redeliver(deliveries) -> int:  # type: ignore[no-untyped-def]
    """Send the same payloads again, as new deliveries (the log keeps the old attempts)."""
    copies = WebhookDelivery.objects.bulk_create(
        WebhookDelivery(webhook_id=d.webhook_id, event=d.event, payload=d.payload)
        for d in deliveries
    )
    schedule([c.pk for c in copies])
    return len(copies)


class Attempt:
    """The outcome of one POST."""

    def __init__(self, code: int | None = None, body: str = "", error: str = "") -> None:
        self.code, self.body, self.error = code, body, error

    @property
    def ok(self) -> bool:
        return self.code is not None and 200 <= self.code < 300

    @property
    def retryable(self) -> bool:
        # A refused address will stay refused; 4xx other than 408/429 mean "don't send this".
        if self.error.startswith("blocked:"):
            return False
        return self.code is None or self.code in {408, 429} or self.code >= 500


async def post(url: str, secret: str, delivery_id: int, event: str, body: bytes) -> Attempt:
    try:
        vetted = await aresolve_and_check(url)
    except BlockedURL as exc:
        return Attempt(error=f"blocked: {exc}")
    pins = {(vetted.host.lower(), vetted.port): tuple(str(a) for a in vetted.addresses)}
    headers = {
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        "X-Parley-Event": event,
        "X-Parley-Delivery": str(delivery_id),
        "X-Parley-Signature": sign(secret, int(time.time()), body),
    }
    try:
        async with httpx.AsyncClient(
            transport=PinnedTransport(pins), timeout=TIMEOUT, follow_redirects=False
        ) as client:
            response = await client.post(url, content=body, headers=headers)
    except httpx.HTTPError as exc:
        return Attempt(error=f"{type(exc).__name__}: {exc}"[:500])
    return Attempt(code=response.status_code, body=response.text[:RESPONSE_KEPT])


def attempt_delivery(delivery: WebhookDelivery) -> Attempt:
    """One attempt, recorded on the delivery row."""
    body = json.dumps(delivery.payload, separators=(",", ":")).encode()
    hook = delivery.webhook
    outcome = asyncio.run(post(hook.url, hook.secret, delivery.pk, delivery.event, body))
    delivery.attempts += 1
    delivery.response_code = outcome.code
    delivery.response_body = outcome.body
    delivery.error = outcome.error
    if outcome.ok:
        delivery.status = WebhookDelivery.Status.SUCCEEDED
        delivery.delivered_at = timezone.now()
    elif not outcome.retryable or delivery.attempts >= settings.PARLEY_WEBHOOK_MAX_ATTEMPTS:
        delivery.status = WebhookDelivery.Status.FAILED
    delivery.save(
        update_fields=[
            "attempts", "response_code", "response_body", "error", "status", "delivered_at"
        ]
    )  # fmt: skip
    if not outcome.ok:
        log.info(
            "webhook delivery %s to %s failed (attempt %s): %s",
            delivery.pk,
            hook.name,
            delivery.attempts,
            outcome.error or outcome.code,
        )
    return outcome


def retry_delay(attempts: int, *, base: float | None = None) -> float:
    """Exponential backoff with full jitter, in seconds."""
    import random

    base = settings.PARLEY_WEBHOOK_RETRY_BASE_SECONDS if base is None else base
    return random.uniform(0, base * 2 ** max(0, attempts - 1))  # noqa: S311 - not crypto


def conversation_data(conversation: Any) -> dict[str, Any]:
    return {
        "conversation_id": str(conversation.pk),
        "bot": conversation.bot.public_id,
        "channel": conversation.channel,
        "status": conversation.status,
        "visitor_id": conversation.visitor_id,
    }


def stamp(value: datetime | None) -> str | None:
    return value.isoformat() if value else None
