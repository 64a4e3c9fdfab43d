"""Page helpers of the browser tests: the widget's shadow root, the chat in its iframe,
asking and waiting for a streamed answer, screenshots (PARLEY_SCREENSHOTS=1)."""

from __future__ import annotations

import os
from typing import Any

from tests.conftest import BASE_DIR
from tests.widget.browser import wait_until

SCREENSHOTS = BASE_DIR / "docs" / "screenshots"
TAKE_SCREENSHOTS = os.environ.get("PARLEY_SCREENSHOTS") == "1"


def shot(driver: Any, name: str) -> None:
    if TAKE_SCREENSHOTS:
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        driver.save_screenshot(str(SCREENSHOTS / f"{name}.png"))


def widget_root(driver: Any) -> Any:
    host = wait_until(lambda: driver.find_elements("css selector", "parley-widget"), 20, "widget")
    return host[0].shadow_root


def panel_is_open(driver: Any) -> bool:
    return driver.execute_script(
        "const root = document.querySelector('parley-widget').shadowRoot;"
        "return root.querySelector('.launcher').getAttribute('aria-expanded') === 'true'"
        " && getComputedStyle(root.querySelector('.panel')).visibility === 'visible';"
    )


def enter_chat(driver: Any) -> None:
    frame = widget_root(driver).find_element("css selector", "iframe")
    driver.switch_to.frame(frame)
    wait_until(lambda: driver.find_elements("id", "transcript"), 20, "chat page in the iframe")


def watch_transcript(driver: Any) -> None:
    """Records what the visitor sees appear: the typing indicator, and the answer while it
    is still streaming (before `done`)."""
    driver.execute_script(
        "window.__seen = {typing: false, streaming: false};"
        "new MutationObserver((records) => { for (const record of records) {"
        "  for (const node of record.addedNodes) {"
        "    if (node.id === 'typing') __seen.typing = true;"
        "    if (node.classList?.contains('is-streaming')) __seen.streaming = true;"
        "}}}).observe(document.getElementById('transcript'), {childList: true, subtree: true});"
    )


def ask(driver: Any, question: str) -> Any:
    """Types a question into the chat and waits for its answer to finish streaming. The
    answer is found after the question itself: a resumed conversation may redraw older
    answers at any moment."""
    from selenium.webdriver.common.keys import Keys

    box = driver.find_element("id", "message")
    box.send_keys(question)
    box.send_keys(Keys.ENTER)
    find_answer = """
        const asked = [...document.querySelectorAll('.message-user .bubble')]
            .filter((bubble) => bubble.textContent === arguments[0]).pop();
        let node = asked && asked.closest('li').nextElementSibling;
        while (node && !(node.matches('.message-bot') && !node.matches('.typing'))) {
            node = node.nextElementSibling;
        }
        const finished = node && !node.matches('.is-streaming') && node.querySelector('.rate-up');
        return finished ? node : null;
    """
    try:
        return wait_until(lambda: driver.execute_script(find_answer, question), 40, "an answer")
    except AssertionError as error:
        seen = driver.execute_script("return document.getElementById('chat').innerText")
        raise AssertionError(f"{error} to {question!r}; the chat shows:\n{seen}") from None


def xss_ran(driver: Any) -> Any:
    return driver.execute_script("return window.__xss")
