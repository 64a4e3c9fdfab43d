"""Webhooks: signed JSON deliveries by Celery with retries, the delivery log, redelivery,
the SSRF guard on endpoints, and tenant isolation."""

from __future__ import annotations

import time

import pytest
from django.db import connection
from django_tenants.utils import schema_context

from chatbot import webhooks
from chatbot.celery import app
from chatbot.models import Bot, Webhook, WebhookDelivery
from conversations import services as conversations
from tests.conftest import start_worker, stop_worker, wait_for_worker
from tests.fakes.webhook_receiver import Receiver

EVENTS = ["conversation.started", "message.created"]


def test_a_signature_verifies_and_tampering_or_replays_fail():
    body = b'{"event":"message.created"}'
    header = webhooks.sign("whsec_abc", int(time.time()), body)
    assert webhooks.verify("whsec_abc", header, body)
    assert not webhooks.verify("whsec_abc", header, body + b" ")
    assert not webhooks.verify("whsec_other", header, body)
    old = webhooks.sign("whsec_abc", int(time.time()) - 3600, body)
    assert not webhooks.verify("whsec_abc", old, body)  # a replay an hour later
    assert not webhooks.verify("whsec_abc", "garbage", body)


@pytest.mark.worker
def test_events_are_delivered_signed_and_retried_after_a_500(django_db_setup, django_db_blocker):
    env = {"PARLEY_WEBHOOK_RETRY_BASE_SECONDS": "0", "PARLEY_FETCH_ALLOWED_NETWORKS": "127.0.0.0/8"}
    with django_db_blocker.unblock(), Receiver(500) as receiver:
        worker = start_worker(extra_env=env)
        try:
            wait_for_worker(app)
            with schema_context("tenant_a"):
                hook = Webhook.objects.create(name="CRM", url=receiver.url, events=EVENTS)
                bot = Bot.objects.create(name="Webhook bot")
                conversation, _ = conversations.start_or_resume(bot, None, visitor_id="v-12345678")
                conversations.add_user_message(conversation, "Hello there")
                deadline = time.monotonic() + 60
                while time.monotonic() < deadline:
                    states = list(hook.deliveries.values_list("status", flat=True))
                    if len(states) == 2 and "pending" not in states:
                        break
                    time.sleep(0.2)
                deliveries = {d.event: d for d in hook.deliveries.all()}
                secret = hook.secret
                assert {d.status for d in deliveries.values()} == {"succeeded"}
                assert sorted(d.attempts for d in deliveries.values()) == [1, 2]  # one retried
                assert all(d.response_code == 200 for d in deliveries.values())
        finally:
            stop_worker(worker)
            with schema_context("tenant_a"):
                Bot.objects.filter(name="Webhook bot").delete()
                Webhook.objects.filter(name="CRM").delete()
    assert [r["answered"] for r in receiver.received].count(500) == 1
    assert len(receiver.received) == 3
    for request in receiver.received:
        headers = request["headers"]
        assert webhooks.verify(secret, headers["x-parley-signature"], request["body"])
        assert headers["x-parley-event"] == request["json"]["event"]
        assert request["json"]["tenant"] == "tenant_a"
    message = next(r["json"] for r in receiver.received if r["json"]["event"] == "message.created")
    assert message["data"]["message"]["content"] == "Hello there"
    assert message["data"]["bot"] == bot.public_id


def make_delivery(url: str) -> WebhookDelivery:
    hook = Webhook.objects.create(name="Internal", url=url, events=["message.created"])
    return WebhookDelivery.objects.create(webhook=hook, event="message.created", payload={})


@pytest.mark.parametrize(
    "url",
    [
        "http://10.0.0.7/hook",
        "http://127.0.0.1:9/hook",
        "http://169.254.169.254/latest/meta-data",
        "http://[::1]/hook",
    ],
)
def test_private_addresses_are_refused_and_not_retried(in_tenant_a, settings, url):
    settings.PARLEY_FETCH_ALLOWED_NETWORKS = ""
    delivery = make_delivery(url)
    outcome = webhooks.attempt_delivery(delivery)
    delivery.refresh_from_db()
    assert outcome.error.startswith("blocked:") and not outcome.retryable
    assert delivery.status == "failed" and delivery.attempts == 1
    assert delivery.response_code is None


def test_only_active_subscribed_endpoints_get_an_event(
    in_tenant_a, django_capture_on_commit_callbacks
):
    Webhook.objects.create(name="all", url="https://a.example/h", events=EVENTS)
    Webhook.objects.create(name="off", url="https://b.example/h", events=EVENTS, is_active=False)
    Webhook.objects.create(name="other", url="https://c.example/h", events=["source.failed"])
    with django_capture_on_commit_callbacks() as callbacks:
        assert webhooks.emit("message.created", {"x": 1}) == 1
    assert len(callbacks) == 1
    assert list(WebhookDelivery.objects.values_list("webhook__name", flat=True)) == ["all"]
    with pytest.raises(ValueError):
        webhooks.emit("no.such.event", {})


def test_the_console_redelivers_from_the_log(alice_client, in_tenant_a, settings, eager_tasks):
    settings.PARLEY_FETCH_ALLOWED_NETWORKS = "127.0.0.0/8"
    with Receiver() as receiver:
        delivery = make_delivery(receiver.url)
        delivery.status, delivery.attempts = "failed", 6
        delivery.save()
        response = alice_client.post(
            "/admin/chatbot/webhookdelivery/",
            {"action": "redeliver", "_selected_action": [delivery.pk]},
        )
        assert response.status_code == 302
        # on_commit inside the test transaction: run what was queued.
        connection.set_tenant(in_tenant_a)
        copy = WebhookDelivery.objects.exclude(pk=delivery.pk).get()
        from chatbot.tasks import deliver_webhook

        deliver_webhook.apply(args=[copy.pk], headers={"_schema_name": "tenant_a"})
    copy.refresh_from_db()
    assert copy.status == "succeeded" and copy.payload == delivery.payload
    assert len(receiver.received) == 1
    log = alice_client.get("/admin/chatbot/webhookdelivery/").content.decode()
    assert "succeeded" in log and "failed" in log


def test_the_console_shows_the_secret_and_refuses_bad_urls(alice_client, in_tenant_a):
    response = alice_client.post(
        "/admin/chatbot/webhook/add/",
        {"name": "CRM", "url": "ftp://crm.example/hook", "events": ["message.created"]},
    )
    assert response.status_code == 200 and not Webhook.objects.exists()
    response = alice_client.post(
        "/admin/chatbot/webhook/add/",
        {
            "name": "CRM",
            "url": "https://crm.example/hook",
            "events": ["message.created", "handoff.requested"],
            "is_active": "on",
            "deliveries-TOTAL_FORMS": "0",
            "deliveries-INITIAL_FORMS": "0",
        },
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    connection.set_tenant(in_tenant_a)
    hook = Webhook.objects.get()
    assert hook.secret.startswith("whsec_") and hook.events == [
        "message.created",
        "handoff.requested",
    ]
    with connection.cursor() as cursor:
        cursor.execute("SELECT secret FROM chatbot_webhook")
        assert hook.secret not in cursor.fetchone()[0]  # encrypted at rest
    page = alice_client.get(f"/admin/chatbot/webhook/{hook.pk}/change/").content.decode()
    assert hook.secret in page


def test_tenant_b_endpoints_hear_nothing_of_tenant_a(
    tenant_a, tenant_b, django_capture_on_commit_callbacks
):
    connection.set_tenant(tenant_b)
    Webhook.objects.create(name="B's CRM", url="https://b.example/h", events=EVENTS)
    connection.set_tenant(tenant_a)
    with django_capture_on_commit_callbacks():
        assert webhooks.emit("message.created", {"x": 1}) == 0
    connection.set_tenant(tenant_b)
    assert not WebhookDelivery.objects.exists()
