"""A generator of long, Sphinx-style API reference pages (the kind trafilatura truncates).

The page looks like a CMS's API reference: nested ``<section>``s with ids derived from their
titles (as Sphinx and MkDocs make them), ``<dl class="py class|method">`` entries with
signature ``<dt>``s and ``<dd>`` bodies, field lists, code blocks, notes and tables, inside a
``role="main"`` element, with the usual sidebar, header and footer around it. Several section
titles ("Menus", "Navigation", "Sharing", "Related objects", "Tags", "Footer blocks", "Social
accounts", "Authors", "Buttons") give ids that trafilatura's boilerplate rules delete whole.
"""

from __future__ import annotations

import random
from html import escape

TOPICS = [
    "Pages",
    "Menus",
    "Images",
    "Navigation",
    "Documents",
    "Sharing",
    "Search",
    "Related objects",
    "Forms",
    "Tags",
    "Snippets",
    "Footer blocks",
    "Redirects",
    "Social accounts",
    "Settings",
    "Authors",
    "Workflows",
    "Buttons",
    "Locales",
    "Revisions",
]
WORDS = [
    "value",
    "instance",
    "returns",
    "object",
    "field",
    "queryset",
    "request",
    "default",
    "argument",
    "raises",
    "method",
    "string",
    "integer",
    "list",
    "mapping",
    "optional",
    "keyword",
    "cache",
    "template",
    "context",
    "locale",
    "revision",
    "parent",
    "child",
    "tree",
    "node",
    "publish",
    "draft",
    "schedule",
    "permission",
    "user",
    "group",
    "site",
    "root",
    "path",
    "slug",
    "title",
    "body",
    "render",
    "block",
    "stream",
    "widget",
    "panel",
    "model",
    "manager",
    "signal",
    "hook",
    "register",
]


def _sentence(rng: random.Random, words: int = 14) -> str:
    text = " ".join(rng.choice(WORDS) for _ in range(words))
    return text[0].upper() + text[1:] + "."


def _para(rng: random.Random, sentences: int = 3) -> str:
    return " ".join(_sentence(rng, rng.randint(8, 18)) for _ in range(sentences))


def _slug(title: str) -> str:
    return title.lower().replace(" ", "-")


def _method(rng: random.Random, cls: str, name: str) -> str:
    params = ", ".join(
        f'<em class="sig-param"><span class="n">{rng.choice(WORDS)}</span>=<span>None</span></em>'
        for _ in range(rng.randint(1, 3))
    )
    return f"""
<dl class="py method">
<dt class="sig sig-object py" id="{cls}.{name}"><span class="sig-name descname">{name}</span>
<span class="sig-paren">(</span>{params}<span class="sig-paren">)</span>
<a class="headerlink" href="#{cls}.{name}" title="Permalink">¶</a></dt>
<dd><p>{escape(_para(rng, 2))}</p>
<dl class="field-list simple">
<dt class="field-odd">Parameters</dt>
<dd class="field-odd"><ul class="simple">
<li><p><strong>{rng.choice(WORDS)}</strong>
(<a class="reference internal" href="#"><em>str</em></a>) - {escape(_sentence(rng))}</p></li>
<li><p><strong>{rng.choice(WORDS)}</strong> - {escape(_sentence(rng))}</p></li>
</ul></dd>
<dt class="field-even">Returns</dt><dd class="field-even"><p>{escape(_sentence(rng))}</p></dd>
</dl>
<div class="highlight-python notranslate"><div class="highlight"><pre>
&gt;&gt;&gt; {cls.lower()}.{name}({rng.choice(WORDS)}="{rng.choice(WORDS)}")
&lt;{cls} {rng.choice(WORDS)}&gt;
</pre></div></div>
<div class="versionchanged"><p><span class="versionmodified changed">Changed in version
{rng.randint(2, 6)}.{rng.randint(0, 9)}: </span>{escape(_sentence(rng))}</p></div>
</dd></dl>"""


def _class_entry(rng: random.Random, topic: str, index: int) -> str:
    cls = topic.title().replace(" ", "") + ("Manager" if index else "")
    methods = "".join(
        _method(rng, cls, f"{rng.choice(WORDS)}_{rng.choice(WORDS)}") for _ in range(3)
    )
    return f"""
<dl class="py class">
<dt class="sig sig-object py" id="{cls}"><em class="property">class </em>
<span class="sig-prename descclassname">cms.models.</span>
<span class="sig-name descname">{cls}</span>
<a class="headerlink" href="#{cls}">¶</a></dt>
<dd><p>{escape(_para(rng, 3))}</p>
<div class="admonition note"><p class="admonition-title">Note</p>
<p>{escape(_para(rng, 2))}</p></div>
{methods}
</dd></dl>"""


def _table(rng: random.Random) -> str:
    rows = "".join(
        f"<tr><td><code>{rng.choice(WORDS)}</code></td><td>{escape(_sentence(rng, 10))}</td></tr>"
        for _ in range(4)
    )
    return (
        '<table class="docutils"><thead><tr><th>Option</th><th>Meaning</th></tr></thead>'
        f"<tbody>{rows}</tbody></table>"
    )


def _section(rng: random.Random, topic: str) -> str:
    entries = "".join(_class_entry(rng, topic, index) for index in range(2))
    return f"""
<section id="{_slug(topic)}">
<h2>{topic}<a class="headerlink" href="#{_slug(topic)}">¶</a></h2>
<p>{escape(_para(rng, 4))}</p>
{_table(rng)}
<section id="{_slug(topic)}-reference"><h3>{topic} reference</h3>
<p>{escape(_para(rng, 2))}</p>
{entries}
</section>
</section>"""


def reference_page(seed: int = 7, topics: list[str] | None = None) -> str:
    """A long reference page; same seed, same page."""
    rng = random.Random(seed)
    sidebar = "".join(f'<li><a href="/{_slug(t)}/">{t}</a></li>' for t in TOPICS)
    sections = "".join(_section(rng, topic) for topic in topics or TOPICS)
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>API reference — CMS 5.0 documentation</title>
<link rel="canonical" href="/reference/api.html"></head>
<body>
<header class="site-header"><nav><a href="/">Home</a> <a href="/docs/">Docs</a></nav></header>
<div class="document"><div class="documentwrapper"><div class="bodywrapper">
<div class="body" role="main">
<section id="api-reference"><h1>API reference<a class="headerlink" href="#api-reference">¶</a></h1>
<p>{escape(_para(rng, 4))}</p>
<figure><img src="/_images/architecture.png" alt="Architecture overview">
<figcaption>How pages, menus and snippets fit together.</figcaption></figure>
{sections}
</section>
</div></div></div>
<div class="sphinxsidebar" role="navigation"><h3>Contents</h3><ul>{sidebar}</ul></div></div>
<footer class="footer">© 2025 The CMS team. Built with Sphinx.</footer>
</body></html>"""
