"""Extraction: main content without boilerplate, nothing of it lost, images, empty pages."""

from __future__ import annotations

import lxml.html

from knowledge.web.extract import extract_html
from knowledge.web.htmlblocks import normalise
from tests.knowledge.webfixtures.refpage import reference_page

URL = "https://docs.example.com/reference/api.html"

ARTICLE = """<html><head><title>Returns policy | Shop</title></head><body>
<header><nav><a href="/">Home</a><a href="/shop">Shop</a><a href="/help">Help</a></nav></header>
<main><article>
<h1>Returns policy</h1>
<p>You can return any item within 30 days of delivery, as long as it is unused and in its
original packaging. Refunds go back to the original payment method within five working days.</p>
<h2>How to return an item</h2>
<ol><li>Open your order in your account and choose the items to return.</li>
<li>Print the prepaid label and attach it to the parcel.</li></ol>
<h3>Exceptions</h3>
<p>Gift cards, opened software and personalised items cannot be returned, except when faulty.</p>
<table><tr><th>Item</th><th>Return window</th></tr><tr><td>Shoes</td><td>60 days</td></tr>
<tr><td>Electronics</td><td>14 days</td></tr></table>
<figure><img src="img/label.png" alt="A prepaid return label"><figcaption>The label to print.
</figcaption></figure>
<img src="https://cdn.example.com/box.jpg" alt="Packed box">
<img src="data:image/gif;base64,R0lGOD" alt="spacer">
</article></main>
<aside><h3>Related</h3><a href="/shipping">Shipping</a></aside>
<footer>Copyright 2025 Shop Ltd. All rights reserved. Privacy. Terms. Cookies.</footer>
</body></html>"""


def main_blocks(html: str) -> list[str]:
    """Each text block of the page's main element, the way a reader sees it."""
    root = lxml.html.document_fromstring(html).xpath("//*[@role='main']")[0]
    for link in root.xpath(".//a[@class='headerlink']"):
        link.drop_tree()
    blocks = root.xpath(".//p | .//dt | .//pre | .//h1 | .//h2 | .//h3 | .//td")
    return [normalise(block.text_content()) for block in blocks if normalise(block.text_content())]


def test_trafilatura_loses_sections_of_a_long_reference_page_and_we_recover_them() -> None:
    html = reference_page()
    page = extract_html(html, URL)
    assert page.main_chars > 80_000
    # trafilatura alone drops whole sections ("Menus", "Navigation", "Tags"...)
    assert page.trafilatura_chars < 0.9 * page.main_chars
    assert page.method == "structural"
    assert page.text_chars >= 0.95 * page.main_chars
    text = normalise(page.text)
    missing = [block for block in main_blocks(html) if block not in text]
    assert missing == []
    headings = {(e.text, e.level) for e in page.elements if e.kind == "heading"}
    assert {("API reference", 1), ("Menus", 2), ("Navigation reference", 3)} <= headings
    assert any(e.kind == "code" and ">>> " in e.text for e in page.elements)
    assert any(e.kind == "table_row" and e.text.startswith("Option: ") for e in page.elements)
    # ...and still leaves the sidebar and footer out.
    assert "Built with Sphinx" not in text and "Contents" not in text


def test_a_plain_article_goes_through_trafilatura_without_boilerplate() -> None:
    page = extract_html(ARTICLE, "https://shop.example/help/returns")
    assert page.method == "trafilatura" and page.empty_reason is None
    assert page.title.startswith("Returns policy")
    kinds = [(e.kind, e.text[:20], e.level) for e in page.elements]
    assert ("heading", "How to return an ite", 2) in kinds
    assert ("heading", "Exceptions", 3) in kinds
    assert ("list_item", "Print the prepaid la", 0) in kinds
    assert any(e.kind == "table_row" and "Return window: 60 days" in e.text for e in page.elements)
    assert "Copyright" not in page.text and "Shipping" not in page.text
    assert page.text_chars == len("".join(e.text for e in page.elements))


def test_images_keep_their_url_alt_text_and_caption() -> None:
    page = extract_html(ARTICLE, "https://shop.example/help/returns")
    assert [(i.url, i.alt, i.caption) for i in page.images] == [
        (
            "https://shop.example/help/img/label.png",
            "A prepaid return label",
            "The label to print.",
        ),
        ("https://cdn.example.com/box.jpg", "Packed box", ""),
    ]


def test_a_javascript_only_page_is_marked_empty() -> None:
    html = (
        "<html><head><title>App</title><script src='/main.js'></script></head>"
        "<body><div id='root'></div><noscript>You need to enable JavaScript to run this app."
        "</noscript></body></html>"
    )
    page = extract_html(html, URL)
    assert page.empty_reason == "javascript_only" and page.elements == []


def test_a_login_wall_is_marked_empty() -> None:
    html = (
        "<html><body><main><h1>Sign in</h1><form><input name='user'>"
        "<input type='password' name='pw'><button>Log in</button></form>"
        "<p>Forgot your password?</p></main></body></html>"
    )
    assert extract_html(html, URL).empty_reason == "login_wall"


def test_a_page_without_content_is_marked_empty() -> None:
    assert extract_html("<html><body><p>Hi.</p></body></html>", URL).empty_reason == "no_content"
    assert extract_html(b"", URL).empty_reason == "no_content"


def test_bytes_are_decoded_by_their_declared_charset() -> None:
    body = "<p>Caf\u00e9 cr\u00e8me br\u00fbl\u00e9e, served every day from nine until late.</p>"
    html = f'<html><head><meta charset="iso-8859-1"></head><body>{body}</body></html>'
    page = extract_html(html.encode("iso-8859-1"), URL)
    assert "Café crème brûlée" in page.text
