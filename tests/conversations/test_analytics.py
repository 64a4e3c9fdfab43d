"""Analytics: the figures on hand-computed data, the console page, the summary API, access
rules and isolation between tenants, bounded queries."""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.contrib.staticfiles import finders
from django.db import connection
from django.test.utils import CaptureQueriesContext

from chatbot.models import Bot
from conversations import analytics, services
from conversations.models import Conversation, Message
from tests.conftest import HOST_A, logged_in_client

PAGE = "/admin/analytics/"
API = "/api/v1/analytics/summary/"
JAN = dt.date(2026, 1, 1)
PERIOD = analytics.Period(dt.date(2026, 1, 5), dt.date(2026, 1, 8))  # the 5th, 6th and 7th
QUERY = "?from=2026-01-05&to=2026-01-08"


def at(day: int, minute: int = 0) -> dt.datetime:
    return dt.datetime(2026, 1, day, 10, minute, tzinfo=dt.UTC)


def turn(
    conversation: Conversation, when: dt.datetime, question: str, **answer: Any
) -> Message | None:
    """A visitor's question and, unless `answer` is empty, the bot's reply, a second later."""
    asked = services.add_user_message(conversation, question)
    Message.objects.filter(pk=asked.pk).update(created_at=when)
    if not answer:
        return None
    rating = answer.pop("rating", "")
    reply = services.add_assistant_message(conversation, content="…", **answer)
    Message.objects.filter(pk=reply.pk).update(created_at=when + dt.timedelta(seconds=1))
    if rating:
        services.record_feedback(reply, rating)
    return reply


def conversation(bot: Bot, when: dt.datetime) -> Conversation:
    started = Conversation.objects.create(bot=bot, channel="widget")
    Conversation.objects.filter(pk=started.pk).update(created_at=when)
    return started


def llm(provider: str, model: str, tokens_in: int, tokens_out: int, latency: int, ttft: int):  # type: ignore[no-untyped-def]
    return {
        "provider": provider,
        "model": model,
        "tokens_in": tokens_in,
        "tokens_out": tokens_out,
        "latency_ms": latency,
        "ttft_ms": ttft,
    }


@pytest.fixture
def data(in_tenant_a) -> dict[str, Any]:
    """Known conversations on 5 and 7 January (none on the 6th), plus some just outside."""
    support = Bot.objects.create(name="Support", provider="openai", model="gpt-4o-mini")
    sales = Bot.objects.create(name="Sales", provider="anthropic", model="claude-haiku-4-5")
    local = Bot.objects.create(name="Local", provider="openai_compatible", model="llama3.1")
    mini = ("openai", "gpt-4o-mini")

    first = conversation(support, at(5))
    turn(first, at(5, 1), "How do I get a refund?", answered=True, rating="up",
         **llm(*mini, 600_000, 300_000, 1000, 200))  # fmt: skip
    turn(first, at(5, 2), "And shipping?", answered=False, rating="down",
         **llm(*mini, 0, 0, 100, 100))  # fmt: skip
    second = conversation(sales, at(5, 10))
    turn(second, at(5, 11), "  how do I get a REFUND ", answered=True, rating="up",
         **llm("anthropic", "claude-haiku-4-5-20251001", 200_000, 100_000, 2000, 400))  # fmt: skip
    third = conversation(support, at(7))
    turn(third, at(7, 1), "How do I  get a refund", answered=True,
         **llm(*mini, 400_000, 200_000, 3000, 600))  # fmt: skip
    agent = Message.objects.create(conversation=third, role="agent", content="Anything else?")
    Message.objects.filter(pk=agent.pk).update(created_at=at(7, 5))
    fourth = conversation(local, at(7, 10))
    turn(fourth, at(7, 11), "Opening hours?", answered=True,
         **llm("openai_compatible", "llama3.1", 100, 50, 500, 50))  # fmt: skip
    # A question a person answered, not the bot: asked, not answered by the bot.
    fifth = conversation(support, at(7, 20))
    turn(fifth, at(7, 21), "How do I get a refund?")
    staff = Message.objects.create(conversation=fifth, role="agent", content="Here you go")
    Message.objects.filter(pk=staff.pk).update(created_at=at(7, 22))
    # Outside the period: the day before and the day after (`to` is excluded).
    for day in (4, 8):
        outside = conversation(support, at(day))
        turn(outside, at(day, 1), "Outside?", answered=False, **llm(*mini, 9, 9, 9999, 9999))
    return {"support": support, "sales": sales, "local": local}


# --- The figures --------------------------------------------------------------------------
def test_totals_rates_and_percentiles_are_computed_on_the_period(data):
    figures = analytics.summary(PERIOD)
    totals = figures["totals"]
    assert totals["conversations"] == 5
    assert totals["messages"] == 13
    assert (totals["questions"], totals["answers"], totals["agent_messages"]) == (6, 5, 2)
    assert totals["answered"] == 4 and totals["answered_rate"] == 0.8
    assert (totals["ratings_up"], totals["ratings_down"]) == (2, 1)
    assert totals["thumbs_up_ratio"] == 0.6667
    # Latencies 100, 500, 1000, 2000, 3000: p95 sits 0.8 of the way from 2000 to 3000.
    assert figures["latency_ms"] == {"p50": 1000.0, "p95": 2800.0}
    # First tokens 50, 100, 200, 400, 600.
    assert figures["ttft_ms"] == {"p50": 200.0, "p95": 560.0}
    assert figures["period"] == {"from": "2026-01-05", "to": "2026-01-08", "days": 3,
                                 "timezone": "UTC"}  # fmt: skip


def test_days_without_activity_are_zero_filled(data):
    days = analytics.summary(PERIOD)["daily"]
    assert [d["date"] for d in days] == ["2026-01-05", "2026-01-06", "2026-01-07"]
    assert [d["conversations"] for d in days] == [2, 0, 3]
    assert [d["messages"] for d in days] == [6, 0, 7]
    assert [d["answered_rate"] for d in days] == [0.6667, None, 1.0]
    assert [d["thumbs_up_ratio"] for d in days] == [0.6667, None, None]
    assert [d["latency_p50"] for d in days] == [1000.0, None, 1750.0]
    assert (days[0]["latency_p95"], days[0]["ttft_p95"]) == (1900.0, 380.0)
    assert days[1]["ttft_p95"] is None and days[1]["questions"] == 0


def test_cost_comes_from_the_price_table_and_unknown_models_cost_nothing(data):
    figures = analytics.summary(PERIOD)
    models = {(row["provider"], row["model"]): row for row in figures["models"]}
    mini = models["openai", "gpt-4o-mini"]
    assert (mini["answers"], mini["tokens_in"], mini["tokens_out"]) == (3, 1_000_000, 500_000)
    # gpt-4o-mini: $0.15 in, $0.60 out per 1M tokens.
    assert mini["cost_usd"] == pytest.approx(0.15 + 0.30) and mini["price"] == "list"
    # A dated model name takes its family's price: claude-haiku-4-5 is $1 / $5.
    haiku = models["anthropic", "claude-haiku-4-5-20251001"]
    assert haiku["cost_usd"] == pytest.approx(0.20 + 0.50)
    local = models["openai_compatible", "llama3.1"]
    assert (local["cost_usd"], local["price"], local["input_per_1m"]) == (0.0, "unknown", None)
    assert [row["provider"] for row in figures["models"]] == [
        "openai", "anthropic", "openai_compatible"
    ]  # fmt: skip
    assert figures["totals"]["cost_usd"] == pytest.approx(1.15)
    assert figures["totals"]["tokens_in"] == 1_200_100


def test_the_longest_model_name_in_the_table_wins():
    assert analytics.price_of("openai", "gpt-4o-mini-2024-07-18") == (0.15, 0.60)
    assert analytics.price_of("openai", "gpt-4o-2024-08-06") == (2.50, 10.00)
    assert analytics.price_of("openai", "gpt-4o-super") == (2.50, 10.00)
    assert analytics.price_of("openai", "gpt-4omni") is None
    assert analytics.price_of("openai_compatible", "gpt-4o") is None  # someone else's server


def test_top_questions_group_case_and_spacing_variants(data):
    top = analytics.summary(PERIOD)["top_questions"]
    assert top[0] == {
        "question": "How do I get a refund?",  # the most frequent spelling
        "normalised": "how do i get a refund",
        "count": 4,
        "answered": 3,  # the fifth was answered by a person, not the bot
        "answered_share": 0.75,
    }
    assert [(q["normalised"], q["count"], q["answered"]) for q in top[1:]] == [
        ("and shipping", 1, 0),
        ("opening hours", 1, 1),
    ]


def test_one_bot_can_be_singled_out(data):
    figures = analytics.summary(PERIOD, data["support"])
    assert figures["bot"] == {"id": data["support"].public_id, "name": "Support"}
    assert figures["totals"]["conversations"] == 3
    assert figures["totals"]["answers"] == 3
    assert [(m["provider"], m["model"]) for m in figures["models"]] == [("openai", "gpt-4o-mini")]


def test_an_empty_period_has_zero_counts_and_no_rates(in_tenant_a):
    figures = analytics.summary(PERIOD)
    assert figures["totals"]["conversations"] == 0
    assert figures["totals"]["answered_rate"] is None
    assert figures["latency_ms"] == {"p50": None, "p95": None}
    assert figures["models"] == [] and figures["top_questions"] == []


def test_periods_default_to_the_last_30_days_and_refuse_bad_input():
    today = dt.date(2026, 3, 10)
    period = analytics.parse_period(None, None, today=today)
    assert (period.start, period.end, period.days) == (
        dt.date(2026, 2, 9), dt.date(2026, 3, 11), 30
    )  # fmt: skip
    assert analytics.parse_period("2026-01-01", None).end == dt.date(2026, 1, 31)
    for raw_from, raw_to, param in [
        ("2026-13-01", None, "from"),
        (None, "tomorrow", "to"),
        ("2026-01-05", "2026-01-05", "to"),
        ("2024-01-01", "2026-01-01", "to"),
    ]:
        with pytest.raises(analytics.PeriodError) as error:
            analytics.parse_period(raw_from, raw_to)
        assert error.value.param == param


# --- The console page ---------------------------------------------------------------------
def test_the_page_renders_with_charts_from_our_own_static_files(alice_client, data):
    response = alice_client.get(PAGE + QUERY)
    assert response.status_code == 200
    page = response.content.decode()
    assert response.context["summary"]["totals"]["conversations"] == 5
    assert "How do I get a refund?" in page and "$1.15" in page
    scripts = re.findall(r"<script\b([^>]*)>", page)
    sources = [re.search(r'src="([^"]+)"', attrs) for attrs in scripts]
    assert "/static/parley/vendor/chart.umd.min.js" in {s.group(1) for s in sources if s}
    assert not [s.group(1) for s in sources if s and re.match(r"(https?:)?//", s.group(1))]
    # Data only, never code, in the page itself.
    pairs = zip(sources, scripts, strict=True)
    assert all(src or 'type="application/json"' in attrs for src, attrs in pairs)
    assert 'id="analytics-data"' in page
    assert finders.find("parley/vendor/chart.umd.min.js")
    assert finders.find("parley/analytics.js")


def test_the_page_filters_by_bot_and_preset(alice_client, data):
    response = alice_client.get(PAGE + QUERY + f"&bot={data['sales'].public_id}")
    assert response.context["summary"]["totals"]["conversations"] == 1
    assert alice_client.get(PAGE + "?bot=nope").status_code == 404
    response = alice_client.get(PAGE + "?days=7")
    assert response.context["summary"]["period"]["days"] == 7
    response = alice_client.get(PAGE + "?from=2026-02-30")
    assert response.status_code == 200 and "expected a date" in response.content.decode()


def test_the_index_links_the_page(alice_client, data):
    assert f'href="{PAGE}"' in alice_client.get("/admin/").content.decode()


def test_staff_without_the_permission_get_403(tenant_a):
    connection.set_tenant(tenant_a)
    User = get_user_model()
    dana = User.objects.create_user("dana", "dana@example.com", "pw", is_staff=True)
    connection.set_schema_to_public()
    client = logged_in_client(tenant_a, HOST_A, "dana")
    assert client.get(PAGE).status_code == 403
    connection.set_tenant(tenant_a)
    dana.user_permissions.add(Permission.objects.get(codename="view_analytics"))
    connection.set_schema_to_public()
    assert client.get(PAGE).status_code == 200


def test_the_figures_take_five_queries_whatever_the_data(data, django_assert_num_queries):
    # Conversations per day, messages per day, the period's totals, models, top questions.
    with django_assert_num_queries(5):
        analytics.summary(PERIOD)
    with django_assert_num_queries(5):
        analytics.summary(analytics.Period(dt.date(2025, 1, 1), dt.date(2025, 4, 1)))


def test_the_page_runs_a_bounded_number_of_queries(
    alice_client, data, django_assert_max_num_queries
):
    quiet_week = PAGE + "?from=2025-01-01&to=2025-01-08"
    alice_client.get(quiet_week)  # warm caches (content types, permissions)
    with CaptureQueriesContext(connection) as nothing_to_show:
        alice_client.get(quiet_week)
    assert len(nothing_to_show) <= 12  # session, user, bots, the figures, the console's own
    with django_assert_max_num_queries(len(nothing_to_show)):
        assert alice_client.get(PAGE + QUERY).status_code == 200


def test_charlie_sees_nothing_of_tenant_a(charlie_client, data):
    response = charlie_client.get(PAGE + QUERY)
    assert response.status_code == 200
    assert response.context["summary"]["totals"]["conversations"] == 0
    assert "refund" not in response.content.decode().lower()
    assert charlie_client.get(PAGE + f"?bot={data['support'].public_id}").status_code == 404


# --- The API ------------------------------------------------------------------------------
def test_the_api_returns_the_same_figures(api_a, data):
    response = api_a.get(API + QUERY)
    assert response.status_code == 200
    assert response.json() == analytics.summary(PERIOD)
    response = api_a.get(API + QUERY + f"&bot={data['local'].public_id}")
    assert response.json()["totals"]["conversations"] == 1


def test_the_api_defaults_to_the_last_30_days(api_a):
    period = api_a.get(API).json()["period"]
    assert period["days"] == 30
    assert period["to"] == (dt.datetime.now(dt.UTC).date() + dt.timedelta(days=1)).isoformat()


def test_the_api_names_a_bad_date(api_a):
    response = api_a.get(API + "?from=05/01/2026")
    assert response.status_code == 400
    body = response.json()["error"]
    assert body["code"] == "invalid" and "from" in body["details"]
    response = api_a.get(API + "?from=2026-01-05&to=2026-01-01")
    assert response.status_code == 400 and "to" in response.json()["error"]["details"]


def test_the_api_says_404_for_an_unknown_bot(api_a):
    response = api_a.get(API + "?bot=unknown")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"


def test_the_api_needs_a_key(db, client):
    assert client.get(API, HTTP_HOST=HOST_A).status_code in {401, 403}


def test_charlie_api_cannot_reach_tenant_a(api_b, data):
    assert api_b.get(API + f"?bot={data['support'].public_id}").status_code == 404
    figures = api_b.get(API + QUERY).json()
    assert figures["totals"]["conversations"] == 0 and figures["top_questions"] == []


def test_the_endpoint_is_in_the_openapi_schema(api_a):
    schema = api_a.get("/api/v1/schema/?format=json").json()
    operation = schema["paths"]["/api/v1/analytics/summary/"]["get"]
    assert {p["name"] for p in operation["parameters"]} == {"from", "to", "bot"}
