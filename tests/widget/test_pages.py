"""The hosted chat page, its config for widget.js, widget.js itself, the admin preview and
the embed block: rendered through the Django test client on tenant hosts."""

from __future__ import annotations

import gzip
import json
import re

import pytest
from django.db import connection
from django.test import Client

from chatbot.models import Bot
from tests.conftest import HOST_A, HOST_B
from widget.embed import embed_html, snippet
from widget.views import style_hash, theme_css

WIDGET_GZIP_BUDGET = 15 * 1024


@pytest.fixture
def bot(in_tenant_a) -> Bot:
    return Bot.objects.create(
        name="Helper",
        title="Acme help",
        greeting="Hi! Ask me about returns.",
        color="#0f766e",
        suggested_questions=["How do I return an item?", "Where is my order?"],
        allowed_origins="https://www.acme.example\nhttp://127.0.0.1:8123\n",
    )


@pytest.fixture
def client_a() -> Client:
    return Client(HTTP_HOST=HOST_A)


def csp_directives(response) -> dict[str, list[str]]:
    directives = {}
    for part in response["Content-Security-Policy"].split(";"):
        name, *values = part.split()
        directives[name] = values
    return directives


def json_block(html: str, element_id: str) -> dict:
    match = re.search(rf'<script id="{element_id}" type="application/json">(.*?)</script>', html)
    assert match, element_id
    return json.loads(match.group(1))


# --- the chat page -----------------------------------------------------------------------------
def test_the_chat_page_renders_the_bots_settings(bot, client_a):
    response = client_a.get(f"/chat/{bot.public_id}/")
    assert response.status_code == 200
    html = response.content.decode()
    assert "<title>Acme help</title>" in html
    assert "Hi! Ask me about returns." in html
    assert 'class="chip">How do I return an item?</button>' in html
    assert 'id="handoff"' in html  # the bot offers a person
    config = json_block(html, "parley-config")
    assert config["bot"] == bot.public_id
    assert config["socketPath"] == f"/ws/chat/{bot.public_id}/"
    assert config["channel"] == "page" and config["embedded"] is False
    strings = json_block(html, "parley-strings")
    assert strings["handoff"] == "Talk to a person"
    assert strings["citation"] == "Source %(n)s"


def test_the_embedded_page_has_a_close_button_and_counts_as_the_widget(bot, client_a):
    html = client_a.get(f"/chat/{bot.public_id}/?embed=1").content.decode()
    assert 'id="close"' in html
    assert json_block(html, "parley-config")["channel"] == "widget"


def test_a_bot_without_handoff_shows_no_handoff_button(bot, client_a):
    bot.offer_handoff = False
    bot.save()
    html = client_a.get(f"/chat/{bot.public_id}/").content.decode()
    assert 'id="handoff"' not in html


def test_charlie_cannot_reach_tenant_a_bots_on_tenant_b(bot):
    client_b = Client(HTTP_HOST=HOST_B)
    for path in ("/chat/{}/", "/chat/{}/config.json", "/chat/{}/preview/"):
        assert client_b.get(path.format(bot.public_id)).status_code == 404


def test_unknown_bot_ids_are_404(in_tenant_a, client_a):
    assert client_a.get("/chat/nope-not-a-bot/").status_code == 404
    assert client_a.get("/chat/nope-not-a-bot/config.json").status_code == 404


def test_the_csp_lets_only_allowed_origins_and_this_host_frame_the_page(bot, client_a):
    response = client_a.get(f"/chat/{bot.public_id}/", HTTP_HOST=f"{HOST_A}:8000")
    csp = csp_directives(response)
    assert csp["frame-ancestors"][0] == "'self'"
    assert "https://www.acme.example" in csp["frame-ancestors"]
    assert "http://127.0.0.1:8123" in csp["frame-ancestors"]
    assert csp["default-src"] == ["'none'"]
    assert csp["script-src"] == ["'self'"]  # no inline scripts, no eval
    assert csp["connect-src"] == ["'self'", f"ws://{HOST_A}:8000", f"wss://{HOST_A}:8000"]
    assert csp["base-uri"] == ["'none'"]
    assert "X-Frame-Options" not in response


def test_origins_that_could_break_out_of_the_header_are_left_out(bot, client_a):
    Bot.objects.filter(pk=bot.pk).update(
        allowed_origins="https://ok.example\nhttps://evil.example;script-src *"
    )
    csp = csp_directives(client_a.get(f"/chat/{bot.public_id}/"))
    assert "https://ok.example" in csp["frame-ancestors"]
    assert csp["script-src"] == ["'self'"]
    assert not any("evil" in source for source in csp["frame-ancestors"])


def test_the_page_runs_no_inline_script_and_its_one_inline_style_is_hashed(bot, client_a):
    response = client_a.get(f"/chat/{bot.public_id}/")
    html = response.content.decode()
    for tag in re.findall(r"<script[^>]*>", html):
        assert 'src="' in tag or 'type="application/json"' in tag, tag
    css = theme_css(bot)
    assert f"<style>{css}</style>" in html
    assert "--accent:#0f766e;--on-accent:#ffffff" in css  # dark teal: white text
    assert style_hash(css) in csp_directives(response)["style-src"]


def test_a_colour_written_around_validation_cannot_inject_css(bot, client_a):
    Bot.objects.filter(pk=bot.pk).update(color=";}*{x:0")  # the column holds 7 characters
    html = client_a.get(f"/chat/{bot.public_id}/").content.decode()
    assert "*{x:0" not in html
    assert "--accent:#4f46e5" in html


def test_untrusted_bot_fields_are_escaped(bot, client_a):
    bot.name = bot.title = "<script>alert('name')</script>"
    bot.greeting = '<img src=x onerror="alert(1)">'
    bot.suggested_questions = ["<b>bold</b>?", "</script><script>alert(2)</script>"]
    bot.avatar_url = "javascript:alert(3)"
    bot.save()
    html = client_a.get(f"/chat/{bot.public_id}/").content.decode()
    assert "<script>alert" not in html
    assert "<img src=x" not in html
    assert "<b>bold</b>" not in html
    assert "javascript:" not in html
    assert "&lt;img src=x onerror=&quot;alert(1)&quot;&gt;" in html
    assert "&lt;b&gt;bold&lt;/b&gt;?" in html
    # json_script escapes < and > so that no value can close its <script> block
    config = json_block(html, "parley-config")
    assert config["suggestedQuestions"][1] == "</script><script>alert(2)</script>"
    assert config["avatarUrl"] == ""


def test_the_page_speaks_the_visitors_language_only_where_it_is_translated(bot, client_a):
    url = f"/chat/{bot.public_id}/"
    british = client_a.get(url, HTTP_ACCEPT_LANGUAGE="en-GB,en;q=0.8").content.decode()
    assert '<html lang="en-gb">' in british
    # Django itself speaks German, but no catalogue translates the chat's strings yet: the
    # page stays English and says so, rather than mislabel English text as German.
    german = client_a.get(url, HTTP_ACCEPT_LANGUAGE="de-DE,de;q=0.9").content.decode()
    assert '<html lang="en-us">' in german
    assert json_block(german, "parley-strings")["handoff"] == "Talk to a person"


# --- config.json for widget.js --------------------------------------------------------------
def test_config_is_readable_cross_origin_by_allowed_origins_only(bot, client_a):
    url = f"/chat/{bot.public_id}/config.json"
    allowed = client_a.get(url, HTTP_ORIGIN="https://www.acme.example")
    assert allowed.status_code == 200
    assert allowed["Access-Control-Allow-Origin"] == "https://www.acme.example"
    assert "Origin" in allowed["Vary"]
    data = allowed.json()
    assert data["color"] == "#0f766e" and data["position"] == "right"
    assert data["chatUrl"] == f"/chat/{bot.public_id}/?embed=1"
    assert data["suggestedQuestions"] == ["How do I return an item?", "Where is my order?"]
    assert data["strings"]["open"] == "Open chat"

    other = client_a.get(url, HTTP_ORIGIN="https://elsewhere.example")
    assert "Access-Control-Allow-Origin" not in other
    own = client_a.get(url, HTTP_ORIGIN=f"http://{HOST_A}:8000")
    assert own["Access-Control-Allow-Origin"] == f"http://{HOST_A}:8000"


# --- widget.js --------------------------------------------------------------------------------
def test_widget_js_is_served_as_javascript_within_its_size_budget(in_tenant_a, client_a):
    response = client_a.get("/widget.js")
    assert response.status_code == 200
    assert response["Content-Type"] == "text/javascript; charset=utf-8"
    assert response["Cross-Origin-Resource-Policy"] == "cross-origin"
    body = response.content
    assert b"window" in body and b"Parley" in body
    assert len(gzip.compress(body, compresslevel=9)) <= WIDGET_GZIP_BUDGET


def test_widget_js_is_sent_gzipped_and_revalidated_by_etag(in_tenant_a, client_a):
    plain = client_a.get("/widget.js")
    zipped = client_a.get("/widget.js", HTTP_ACCEPT_ENCODING="gzip")
    assert zipped["Content-Encoding"] == "gzip"
    assert gzip.decompress(zipped.content) == plain.content
    etag = plain["ETag"]
    assert client_a.get("/widget.js", HTTP_IF_NONE_MATCH=etag).status_code == 304
    assert zipped["ETag"] == f"W/{etag}"  # what a browser that took the gzip sends back
    assert client_a.get("/widget.js", HTTP_IF_NONE_MATCH=zipped["ETag"]).status_code == 304
    assert client_a.get("/widget.js", HTTP_IF_NONE_MATCH='"stale"').status_code == 200


# --- the admin's embed block and preview -------------------------------------------------------
def test_the_preview_page_loads_the_widget_and_only_this_host_may_frame_it(bot, client_a):
    response = client_a.get(f"/chat/{bot.public_id}/preview/")
    assert response.status_code == 200
    html = response.content.decode()
    assert f'<script src="/widget.js" data-bot="{bot.public_id}"' in html
    csp = csp_directives(response)
    assert csp["frame-ancestors"] == ["'self'"]
    assert csp["frame-src"] == ["'self'"]
    assert "X-Frame-Options" not in response


def test_the_embed_block_shows_the_snippet_escaped_with_copy_and_preview(bot):
    html = str(embed_html(bot, "acme.example.com", "https"))
    tag = snippet(bot, "acme.example.com", "https")
    assert tag == (
        f'<script src="https://acme.example.com/widget.js" data-bot="{bot.public_id}" '
        "async></script>"
    )
    assert "&lt;script src=&quot;https://acme.example.com/widget.js&quot;" in html
    assert 'data-copy="parley-snippet-' in html
    assert f'src="/chat/{bot.public_id}/preview/"' in html
    assert "<code>https://www.acme.example</code>" in html


def test_the_embed_block_of_an_unsaved_bot_asks_to_save_first(in_tenant_a):
    html = str(embed_html(Bot(name="New"), "acme.example.com"))
    assert "Save the bot" in html


def test_pages_of_a_bot_read_one_row(bot, client_a, django_assert_max_num_queries):
    connection.set_schema_to_public()
    with django_assert_max_num_queries(3):  # the domain, the bot (+ the tenant's hosts)
        assert client_a.get(f"/chat/{bot.public_id}/").status_code == 200
