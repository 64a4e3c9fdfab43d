"""The bot's console page: the provider key is write-only, the embed snippet is shown."""

from __future__ import annotations

import logging

from django.db import connection

from chatbot.models import Bot

KEY = "sk-ant-CONSOLE-KEY-NEVER-SHOWN-9876543210"


def form_data(bot: Bot, **changes) -> dict:  # type: ignore[no-untyped-def]
    data = {
        "name": bot.name,
        "greeting": bot.greeting,
        "system_prompt": bot.system_prompt,
        "provider": bot.provider,
        "model": bot.model,
        "base_url": bot.base_url,
        "api_key": "",
        "temperature": bot.temperature,
        "max_output_tokens": bot.max_output_tokens,
        "top_k": bot.top_k,
        "relevance_threshold": bot.relevance_threshold,
        "fallback_message": bot.fallback_message,
        "memory_tokens": bot.memory_tokens,
        "answer_in_visitor_language": "on",
        "offer_handoff": "on",
        "handoff_after_failures": bot.handoff_after_failures,
        "allowed_origins": bot.allowed_origins,
        "title": bot.title,
        "color": bot.color,
        "avatar_url": bot.avatar_url,
        "position": bot.position,
        "suggested_questions": "",
    }
    data.update(changes)
    return data


def test_the_key_is_saved_encrypted_and_never_shown_again(alice_client, tenant_a, caplog):
    caplog.set_level(logging.DEBUG)
    connection.set_tenant(tenant_a)
    bot = Bot.objects.create(name="Support")
    url = f"/admin/chatbot/bot/{bot.pk}/change/"
    response = alice_client.post(
        url,
        form_data(
            bot,
            provider="anthropic",
            api_key=KEY,
            suggested_questions="Where is my order?\n\nHow do refunds work?",
        ),
    )
    assert response.status_code == 302, response.content.decode()[:3000]
    connection.set_tenant(tenant_a)
    bot.refresh_from_db()
    assert bot.api_key == KEY and bot.provider == "anthropic"
    assert bot.suggested_questions == ["Where is my order?", "How do refunds work?"]
    page = alice_client.get(url).content.decode()
    assert KEY not in page and "A key is stored" in page
    assert "/widget.js" in page and bot.public_id in page  # the embed snippet
    # Saving the form again with the key field blank keeps the key.
    alice_client.post(url, form_data(bot, api_key=""))
    connection.set_tenant(tenant_a)
    bot.refresh_from_db()
    assert bot.api_key == KEY
    changelist = alice_client.get("/admin/chatbot/bot/").content.decode()
    assert "Support" in changelist and KEY not in changelist
    assert not any(KEY in record.getMessage() for record in caplog.records)


def test_a_provider_without_a_key_is_refused(alice_client, tenant_a):
    connection.set_tenant(tenant_a)
    bot = Bot.objects.create(name="Support")
    response = alice_client.post(
        f"/admin/chatbot/bot/{bot.pk}/change/", form_data(bot, provider="openai")
    )
    assert response.status_code == 200
    assert "OpenAI needs an API key." in response.content.decode()


def test_charlie_cannot_open_tenant_a_bots(charlie_client, tenant_a):
    connection.set_tenant(tenant_a)
    bot = Bot.objects.create(name="Zephyr helper")
    connection.set_schema_to_public()
    response = charlie_client.get(f"/admin/chatbot/bot/{bot.pk}/change/")
    assert response.status_code in {302, 404}
    assert "Zephyr helper" not in charlie_client.get("/admin/chatbot/bot/").content.decode()


def test_try_it_shows_the_answer_and_the_scored_chunks(alice_client, kb_a, run_on_commit):
    from conversations.models import Conversation
    from knowledge import services as knowledge

    run_on_commit(
        knowledge.add_text_source,
        kb_a,
        "Returns",
        "Returns\n\nYou can return any item within 30 days for a full refund.",
    )
    bot = Bot.objects.create(name="Support")
    bot.knowledge_bases.set([kb_a])
    url = f"/admin/chatbot/bot/{bot.pk}/try/"
    page = alice_client.get(f"/admin/chatbot/bot/{bot.pk}/change/").content.decode()
    assert f'data-url="{url}"' in page and "parley/bot-try.js" in page
    data = alice_client.post(
        url, {"question": "Can I return an item?"}, content_type="application/json"
    ).json()
    assert data["answered"] is True and "[1]" in data["answer"]
    chunk = data["chunks"][0]
    assert chunk["used"] is True and chunk["document"]["title"] == "Returns"
    assert chunk["score"] >= data["threshold"] and chunk["vector_score"] is not None
    refused = alice_client.post(
        url, {"question": "Who painted the Mona Lisa?"}, content_type="application/json"
    ).json()
    assert refused["answered"] is False and refused["answer"] == bot.fallback_message
    assert all(not c["used"] for c in refused["chunks"])
    assert connection.schema_name == "tenant_a"
    assert not Conversation.objects.exists()  # staff experiments are not conversations
    bad = alice_client.post(url, "nope", content_type="application/json")
    assert bad.status_code == 400
