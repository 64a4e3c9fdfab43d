"""End to end in real headless Chromium: a customer's page on another origin embeds the
widget with the one-line snippet; a visitor opens it from the keyboard, asks, watches the
answer stream in with its source link, rates it (stored), reloads and finds the
conversation again; a script hidden in a document never runs; the hosted chat page works
on a desktop and on a phone.

Everything is real: daphne serves the ASGI app on the test database (rows committed here,
outside the per-test transaction), answers come from the extractive provider over the
visitor socket, and the customer site is a stdlib web server on http://127.0.0.1:<port>.
`PARLEY_SCREENSHOTS=1` also writes docs/screenshots/widget-*.png and chat-page-*.png.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from django_tenants.utils import schema_context

from chatbot.celery import app as celery_app
from chatbot.models import Bot
from conversations.models import Conversation, Message
from knowledge import services as knowledge
from knowledge.models import Document, KnowledgeBase
from tests.widget.browser import (
    DESKTOP,
    PHONE,
    Daphne,
    HostSite,
    find_browser,
    free_port,
    make_driver,
    set_viewport,
    wait_until,
)
from tests.widget.browser.pages import (
    ask,
    enter_chat,
    panel_is_open,
    shot,
    watch_transcript,
    widget_root,
    xss_ran,
)

RETURNS_URL = "https://docs.acme.example/returns"
RETURNS = (
    "Returns policy\n\n"
    "You can return any item within 30 days of delivery for a full refund. Start a return "
    "from the Orders page and print the prepaid return label. Refunds reach your original "
    "payment method within five business days after the parcel arrives."
)
SHIPPING = (
    "Shipping\n\n"
    "We ship to every country in the European Union. Standard delivery takes three to five "
    "business days; express delivery arrives the next business day."
)
XSS_IMG = "<img src=x onerror=window.__xss=1>"
XSS_SCRIPT = "<script>window.__xss=2</script>"
GIFT_NOTES = (
    "Gift notes\n\n"
    f"Gift notes are printed exactly as typed, so a gift note typed as {XSS_IMG} or as "
    f"{XSS_SCRIPT} is printed exactly like that on the card."
)

HOST_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Acme Outdoor</title>
<style>
  body {{ margin: 0; font: 16px/1.6 Georgia, serif; color: #1f2937; background: #fbfaf7; }}
  header {{ display: flex; gap: 28px; align-items: center; padding: 18px 48px;
            background: #1f2937; color: #f9fafb; }}
  header b {{ font-size: 22px; margin-right: auto; }}
  main {{ max-width: 760px; padding: 40px 48px; }}
  h1 {{ font-size: 40px; line-height: 1.15; margin: 0 0 16px; }}
  .cards {{ display: grid; grid-template-columns: repeat(3, 1fr); gap: 18px; margin-top: 32px; }}
  .cards div {{ height: 150px; border-radius: 10px; background: #e7e1d6; }}
  /* a host page's careless global styles must not reach the widget */
  button {{ background: hotpink !important; border: 5px dashed lime; font-size: 30px; }}
  div {{ letter-spacing: 3px; }}
</style>
<script>
  /* the page's own globals, then what the widget adds, recorded by the page itself when the
     launcher appears (before any WebDriver script runs here) */
  window.__before = Object.keys(window);
  new MutationObserver(function (records, observer) {{
    if (!document.querySelector("parley-widget")) return;
    window.__added = Object.keys(window).filter(function (k) {{
      return __before.indexOf(k) < 0 && k !== "__before";
    }});
    observer.disconnect();
  }}).observe(document.documentElement, {{childList: true, subtree: true}});
</script>
</head><body>
<header><b>Acme Outdoor</b><span>Tents</span><span>Backpacks</span><span>Orders</span></header>
<main><h1>Gear for every trail</h1>
<p>Free returns within 30 days. Shipping to every country in the European Union.</p>
<div class="cards"><div></div><div></div><div></div></div></main>
{snippet}
</body></html>"""


@dataclass
class Live:
    bot: Bot
    base: str  # the tenant's host, http://a.localhost:<port>
    site: HostSite
    driver: Any
    server: Daphne
    host: str  # a.localhost:<port>


@pytest.fixture(scope="module")
def live(request, django_db_setup, django_db_blocker) -> Iterator[Live]:
    browser, chromedriver = find_browser()
    with HostSite() as site, django_db_blocker.unblock():
        celery_app.conf.task_always_eager = True
        try:
            with schema_context("tenant_a"):
                kb = KnowledgeBase.objects.create(name="Browser handbook")
                returns = knowledge.add_text_source(kb, "Returns policy", RETURNS)
                knowledge.add_text_source(kb, "Shipping", SHIPPING)
                knowledge.add_text_source(kb, f"Gift notes {XSS_IMG}", GIFT_NOTES)
                # As a page of a web source would: the source list links to it.
                Document.objects.filter(source=returns).update(url=RETURNS_URL)
                bot = Bot.objects.create(
                    name="Acme Outdoor",
                    title="Acme help",
                    greeting="Hi! I'm Acme's assistant. Ask me about orders, returns and shipping.",
                    color="#0f766e",
                    suggested_questions=[
                        "How do I return an item?",
                        "How long does a refund take?",
                        "Do you ship abroad?",
                    ],
                    allowed_origins=site.origin,
                )
                bot.knowledge_bases.set([kb])
        finally:
            celery_app.conf.task_always_eager = False
        port = free_port()
        base = f"http://a.localhost:{port}"
        site.html = HOST_PAGE.format(
            snippet=f'<script src="{base}/widget.js" data-bot="{bot.public_id}" async></script>'
        )
        server = Daphne(port)
        failures = request.session.testsfailed
        driver = None
        try:
            server.start(f"a.localhost:{port}")
            driver = make_driver(browser, chromedriver)
            driver.set_page_load_timeout(30)
            yield Live(bot, base, site, driver, server, f"a.localhost:{port}")
        finally:
            if driver is not None:
                driver.quit()
            server.close(keep_log=request.session.testsfailed > failures)
            with schema_context("tenant_a"):
                bot.delete()  # and its conversations
                knowledge.delete_knowledge_base(kb)


# --- the tests ---------------------------------------------------------------------------------
def test_a_visitor_on_another_site_asks_sees_a_cited_answer_stream_in_and_rates_it(
    live: Live, django_db_blocker
) -> None:
    from selenium.webdriver.common.keys import Keys

    driver = live.driver
    driver.get(live.site.origin + "/")
    # One global. ChromeDriver's script wrapper leaks a `ret_nodes` of its own.
    added = wait_until(lambda: driver.execute_script("return window.__added"), 20, "widget")
    assert [name for name in added if name != "ret_nodes"] == ["Parley"]
    root = widget_root(driver)
    launcher = root.find_element("css selector", ".launcher")
    assert launcher.get_attribute("aria-expanded") == "false"
    assert launcher.get_attribute("aria-label") == "Open chat: Acme help"
    # The host page's `button {background: hotpink !important}` stays out.
    assert (
        driver.execute_script("return getComputedStyle(arguments[0]).backgroundColor", launcher)
        == "rgb(15, 118, 110)"
    )
    wait_until(lambda: driver.execute_script("return document.readyState") == "complete")
    shot(driver, "widget-closed")

    # Open from the keyboard: focus goes into the chat's message box.
    driver.execute_script("arguments[0].focus()", launcher)
    launcher.send_keys(Keys.ENTER)
    wait_until(lambda: panel_is_open(driver), 10, "panel open")
    enter_chat(driver)
    wait_until(
        lambda: driver.switch_to.active_element.get_attribute("id") == "message", 10, "focus"
    )
    chips = [chip.text for chip in driver.find_elements("css selector", ".chip")]
    assert chips == [
        "How do I return an item?",
        "How long does a refund take?",
        "Do you ship abroad?",
    ]

    watch_transcript(driver)
    answer = ask(driver, "How do I return an item?")
    seen = driver.execute_script("return window.__seen")
    assert seen == {"typing": True, "streaming": True}
    bubble = answer.find_element("css selector", ".bubble")
    assert "30 days" in bubble.text
    cite = bubble.find_element("css selector", "a.cite")
    assert cite.get_attribute("href") == RETURNS_URL
    assert cite.get_attribute("rel") == "noopener noreferrer nofollow"
    source = answer.find_element("css selector", ".sources a")
    assert (source.text, source.get_attribute("href")) == ("Returns policy", RETURNS_URL)

    up = answer.find_element("css selector", ".rate-up")
    up.click()
    wait_until(lambda: answer.find_element("css selector", ".thanks").text, 10, "rated")
    assert up.get_attribute("aria-pressed") == "true"
    with django_db_blocker.unblock(), schema_context("tenant_a"):
        rated = Message.objects.get(
            conversation__bot=live.bot, role="assistant", content__contains="30 days"
        )
        assert rated.rating == "up"
        conversation = rated.conversation
        assert conversation.channel == "widget"
    driver.switch_to.default_content()
    shot(driver, "widget-open")

    # A reload resumes the conversation: the transcript is redrawn from the server's record.
    driver.refresh()
    widget_root(driver).find_element("css selector", ".launcher").click()
    enter_chat(driver)
    wait_until(lambda: driver.find_elements("css selector", ".message-user"), 20, "history")
    assert driver.find_element("css selector", ".message-user").text.endswith(
        "How do I return an item?"
    )
    assert driver.find_element("css selector", ".rate-up").get_attribute("aria-pressed") == "true"

    # Escape inside the chat closes the panel and gives focus back to the launcher.
    driver.find_element("id", "message").send_keys(Keys.ESCAPE)
    driver.switch_to.default_content()
    wait_until(lambda: not panel_is_open(driver), 10, "panel closed")
    assert (
        driver.execute_script(
            "return document.querySelector('parley-widget').shadowRoot.activeElement.className"
        )
        == "launcher"
    )


def test_a_script_hidden_in_a_document_is_shown_as_text_and_never_runs(live: Live) -> None:
    driver = live.driver
    driver.get(live.site.origin + "/")
    widget_root(driver).find_element("css selector", ".launcher").click()
    enter_chat(driver)
    wait_until(
        lambda: driver.switch_to.active_element.get_attribute("id") == "message", 10, "focus"
    )
    answer = ask(driver, "How are gift notes printed?")
    bubble = answer.find_element("css selector", ".bubble")
    assert XSS_IMG in bubble.text
    assert XSS_SCRIPT in bubble.text
    assert not bubble.find_elements("css selector", "img, script")
    source_titles = [a.text for a in answer.find_elements("css selector", ".sources li")]
    assert any(XSS_IMG in title for title in source_titles)
    assert xss_ran(driver) is None
    driver.switch_to.default_content()
    assert xss_ran(driver) is None


def test_the_hosted_chat_page_works_on_a_desktop_and_a_phone(live: Live) -> None:
    driver = live.driver
    driver.get(f"{live.base}/chat/{live.bot.public_id}/")
    wait_until(
        lambda: driver.switch_to.active_element.get_attribute("id") == "message", 10, "focus"
    )
    assert driver.find_element("id", "chat-title").text == "Acme help"
    assert driver.find_element("css selector", ".greeting .bubble").text.startswith("Hi! I'm Acme")
    # The bot's colour, through the page's one (hashed) inline style.
    header = driver.find_element("css selector", ".chat-header")
    assert (
        driver.execute_script("return getComputedStyle(arguments[0]).backgroundColor", header)
        == "rgb(15, 118, 110)"
    )
    driver.find_element("css selector", ".chip").click()  # "How do I return an item?"
    wait_until(
        lambda: driver.find_elements("css selector", ".message-bot:not(.greeting) .rate-up"),
        40,
        "answer",
    )
    assert driver.find_element("css selector", ".message-user").text.endswith(
        "How do I return an item?"
    )
    assert xss_ran(driver) is None
    shot(driver, "chat-page-desktop")

    set_viewport(driver, PHONE)
    try:
        driver.refresh()  # and the conversation comes back
        wait_until(
            lambda: driver.find_elements("css selector", ".message-bot:not(.greeting) .rate-up"),
            20,
            "history",
        )
        assert driver.execute_script("return document.documentElement.scrollWidth") <= 390
        composer = driver.find_element("id", "composer")
        bottom = driver.execute_script(
            "return arguments[0].getBoundingClientRect().bottom", composer
        )
        assert 780 <= bottom <= 844  # the composer sits at the bottom of the screen
        shot(driver, "chat-page-phone")
    finally:
        set_viewport(driver, DESKTOP)


def test_the_admins_live_preview_opens_the_widget_under_a_strict_csp(live: Live) -> None:
    driver = live.driver
    driver.get(f"{live.base}/chat/{live.bot.public_id}/preview/")
    wait_until(lambda: driver.find_elements("css selector", "parley-widget"), 20, "widget")
    wait_until(lambda: panel_is_open(driver), 10, "the preview opens the panel")
    launcher = widget_root(driver).find_element("css selector", ".launcher")
    # The constructed stylesheet applies although the page allows no inline styles.
    assert (
        driver.execute_script("return getComputedStyle(arguments[0]).borderRadius", launcher)
        == "50%"
    )
    enter_chat(driver)
    assert driver.find_element("id", "chat-title").text == "Acme help"
    # Opening by itself did not take the focus away from the page around it.
    assert driver.switch_to.active_element.get_attribute("id") != "message"


MARKDOWN_CASES = {
    "**Bold**, *italic*, `x < y` and [docs](https://example.com/a?b=1).": (
        "<p><strong>Bold</strong>, <em>italic</em>, <code>x &lt; y</code> and "
        '<a href="https://example.com/a?b=1" target="_blank" rel="noopener noreferrer nofollow">'
        "docs</a>.</p>"
    ),
    "[click](javascript:alert(1)) [data](data:text/html,x) <b>raw</b>": (
        "<p>click data &lt;b&gt;raw&lt;/b&gt;</p>"
    ),
    "Steps:\n1. Open *Orders*\n2. Press **Return**\n   - print the label": (
        "<p>Steps:</p><ol><li>Open <em>Orders</em></li><li>Press <strong>Return</strong>"
        "<ul><li>print the label</li></ul></li></ol>"
    ),
    "```\n<script>alert(1)</script>\n```": (
        "<pre><code>&lt;script&gt;alert(1)&lt;/script&gt;</code></pre>"
    ),
    "snake_case_name and 2 * 3 * 4 stay": "<p>snake_case_name and 2 * 3 * 4 stay</p>",
    "See https://example.com/x. Then [1][2].": (
        '<p>See <a href="https://example.com/x" target="_blank" '
        'rel="noopener noreferrer nofollow">https://example.com/x</a>. Then [1][2].</p>'
    ),
}


def test_answers_render_a_small_markdown_subset_and_nothing_else(live: Live) -> None:
    driver = live.driver
    driver.get(f"{live.base}/chat/{live.bot.public_id}/")
    rendered = driver.execute_script(
        "const out = {};"
        "for (const text of arguments[0]) {"
        "  const div = document.createElement('div');"
        "  div.appendChild(ParleyMarkdown.render(text, {}));"
        "  out[text] = div.innerHTML;"
        "}"
        "return out;",
        list(MARKDOWN_CASES),
    )
    for text, html in MARKDOWN_CASES.items():
        assert rendered[text] == html, text


def test_the_chat_reconnects_after_a_server_restart_and_resumes_the_conversation(
    live: Live,
) -> None:
    driver = live.driver
    driver.get(f"{live.base}/chat/{live.bot.public_id}/")
    answer = ask(driver, "Do you ship abroad?")
    assert "European Union" in answer.find_element("css selector", ".bubble").text
    status = driver.find_element("id", "connection")

    driver.execute_script(
        "document.querySelectorAll('.message').forEach((li) => li.dataset.old = 1)"
    )
    live.server.crash()
    wait_until(lambda: status.text == "Connection lost. Reconnecting…", 10, "the drop is shown")
    live.server.start(live.host)
    wait_until(lambda: status.text == "", 30, "reconnected with backoff")

    # The transcript is redrawn from the server's record (resume), and the conversation goes on.
    redrawn = (
        "return [...document.querySelectorAll('.message-user:not([data-old]) .bubble')]"
        ".some((bubble) => bubble.textContent === 'Do you ship abroad?')"
    )
    wait_until(lambda: driver.execute_script(redrawn), 10, "the transcript redrawn")
    answer = ask(driver, "How long does a refund take?")
    assert "five business days" in answer.find_element("css selector", ".bubble").text


def test_the_bot_admin_shows_the_snippet_a_copy_button_and_a_live_preview(
    live: Live, committed_session
) -> None:
    driver = live.driver
    name, value = committed_session("tenant_a", "alice").split("=", 1)
    driver.get(f"{live.base}/widget.js")  # a page of the host, to set its cookie on
    driver.add_cookie({"name": name, "value": value, "path": "/"})
    driver.get(f"{live.base}/admin/chatbot/bot/{live.bot.pk}/change/")
    code = wait_until(
        lambda: driver.find_elements("css selector", ".parley-embed-snippet code"), 20, "block"
    )
    assert code[0].text == (
        f'<script src="{live.base}/widget.js" data-bot="{live.bot.public_id}" async></script>'
    )
    driver.find_element("css selector", ".parley-embed-copy").click()
    status = driver.find_element("css selector", ".parley-embed-copied")
    wait_until(lambda: status.text, 5, "copy feedback")
    preview = driver.find_element("css selector", ".parley-embed-preview")
    driver.switch_to.frame(preview)
    wait_until(lambda: driver.find_elements("css selector", "parley-widget"), 20, "preview widget")
    wait_until(lambda: panel_is_open(driver), 10, "preview opened")
    enter_chat(driver)
    wait_until(lambda: driver.find_element("id", "connection").text == "", 10, "connected")
    driver.switch_to.default_content()
    set_viewport(driver, {**DESKTOP, "height": 1100})
    try:
        block = driver.find_element("css selector", ".parley-embed")
        driver.execute_script("arguments[0].closest('.form-row').scrollIntoView()", block)
        shot(driver, "widget-admin-embed")
    finally:
        set_viewport(driver, DESKTOP)


def test_a_visitor_asks_for_a_person_and_leaves_an_email_when_nobody_is_there(
    live: Live, django_db_blocker
) -> None:
    """Last: it hands its conversation to people, and the bot goes silent in it."""
    driver = live.driver
    driver.get(f"{live.base}/chat/{live.bot.public_id}/")
    driver.execute_script("localStorage.clear()")  # a new visitor, a new conversation
    driver.refresh()
    wait_until(
        lambda: driver.switch_to.active_element.get_attribute("id") == "message", 10, "focus"
    )
    driver.find_element("id", "handoff").click()
    # No agent is online in the test tenant: the page says so and offers an email form.
    email = wait_until(lambda: driver.find_elements("id", "lead-email"), 10, "lead form")[0]
    assert driver.find_element("id", "handoff").get_attribute("disabled") == "true"
    assert driver.find_element("id", "connection").text == "Waiting for a person…"
    email.send_keys("not an address")
    driver.find_element("css selector", ".lead-send").click()
    assert email.get_attribute("aria-invalid") == "true"
    email.clear()
    email.send_keys("visitor@example.com")
    shot(driver, "chat-page-handoff")
    driver.find_element("css selector", ".lead-send").click()
    wait_until(
        lambda: "Thank you!" in driver.find_element("css selector", ".lead").text, 10, "saved"
    )
    visitor = driver.execute_script("return localStorage.getItem('parley.visitor')")
    with django_db_blocker.unblock(), schema_context("tenant_a"):
        conversation = Conversation.objects.get(bot=live.bot, visitor_id=visitor)
        assert (conversation.status, conversation.lead_email) == ("waiting", "visitor@example.com")
        assert conversation.channel == "page"


def test_an_agent_takes_a_visitor_from_the_live_inbox_and_they_talk(
    live: Live, committed_session, django_db_blocker
) -> None:
    """Two browsers: the visitor's chat page and an agent's console inbox (handoff.js)."""
    from selenium.webdriver.common.keys import Keys

    visitor = live.driver
    agent = make_driver(*find_browser())
    try:
        set_viewport(agent, {**DESKTOP, "height": 760})
        name, value = committed_session("tenant_a", "alice").split("=", 1)
        agent.get(f"{live.base}/widget.js")  # a page of the host, to set the cookie on
        agent.add_cookie({"name": name, "value": value, "path": "/"})
        agent.get(f"{live.base}/admin/handoffs/")
        state = agent.find_element("css selector", ".handoff-state")
        wait_until(lambda: state.text.startswith("Live"), 20, "the inbox's socket")

        visitor.get(f"{live.base}/chat/{live.bot.public_id}/")
        visitor.execute_script("localStorage.clear()")
        visitor.refresh()
        box = wait_until(lambda: visitor.find_elements("id", "message"), 10, "chat")[0]
        box.send_keys("Can I talk to a human about a broken tent pole?", Keys.ENTER)
        wait_until(
            lambda: visitor.find_element("id", "connection").text == "Waiting for a person…",
            10,
            "waiting",
        )
        assert not visitor.find_elements("id", "lead-email")  # an agent is online

        request = wait_until(
            lambda: [
                b
                for b in agent.find_elements("css selector", ".handoff-list button")
                if "broken tent pole" in b.text
            ],
            10,
            "the request in the inbox",
        )[0]
        request.click()
        agent.find_element("css selector", "[data-action=take]").click()
        reply = agent.find_element("id", "handoff-text")
        wait_until(lambda: reply.is_enabled(), 10, "taken")
        reply.send_keys("Hi, I'm Alice. Which tent is it? I can send a new pole today.", Keys.ENTER)

        bubble = wait_until(
            lambda: visitor.find_elements("css selector", ".message-agent"), 10, "agent message"
        )[0]
        assert "send a new pole today" in bubble.text and "alice" in bubble.text.lower()
        box = visitor.find_element("id", "message")
        box.send_keys("The Trailhead 2, bought last spring.", Keys.ENTER)
        wait_until(
            lambda: "Trailhead 2" in agent.find_element("css selector", ".handoff-transcript").text,
            10,
            "the visitor's reply in the inbox",
        )
        # The bot stayed silent: no bot answer after the request.
        bot_answers = visitor.execute_script(
            "return document.querySelectorAll('.message-bot:not(.typing)').length"
        )
        assert bot_answers == 1  # the greeting only
        shot(visitor, "handoff-visitor")
        shot(agent, "handoff-agent")

        agent.find_element("css selector", "[data-action=release]").click()
        wait_until(
            lambda: visitor.find_element("id", "connection").text == "", 10, "back to the bot"
        )
        with django_db_blocker.unblock(), schema_context("tenant_a"):
            conversation = Conversation.objects.get(title__contains="broken tent pole")
            roles = list(
                conversation.messages.order_by("created_at").values_list("role", flat=True)
            )
            assert conversation.status == "bot"
        assert roles == ["user", "agent", "user"]
        set_viewport(agent, {**DESKTOP, "width": 1600, "height": 700})
        agent.get(f"{live.base}/admin/conversations/conversation/")
        shot(agent, "console-inbox")
        agent.get(f"{live.base}/admin/conversations/conversation/{conversation.pk}/change/")
        assert "Trailhead 2" in agent.find_element("id", "content-main").text
    finally:
        agent.quit()
