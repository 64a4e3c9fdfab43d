"""The extractive mode: answers without any LLM, by quoting the retrieved passages.

It picks the few sentences of the top passages that share the most (weighted) terms with
the question, keeps them in their original order, and cites each passage it quotes with
the `[n]` of its `Passage.number`:

    According to *Shipping FAQ*: Orders ship within 2 business days. [1]

    Also, from *Returns policy*: You can return any item within 30 days. [2]

Terms are lower-cased words without stop words, lightly stemmed (plural, -ing, -ed…),
weighted by rarity among the candidate sentences, so that "refund" counts for more than a
word every sentence shares. It is deliberately simple: the offline default when a bot has
no LLM key, not a summariser.
"""

from __future__ import annotations

import asyncio
import math
import re
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass

from chatbot.llm.base import LLMRequest, Passage, Provider, Token, Usage, estimate_tokens

MAX_WORDS = 120
MAX_SENTENCES = 4
TOP_PASSAGES = 3
# Sentences scoring below this share of the best one are left out as filler.
RELATIVE_CUTOFF = 0.5

_STOP_WORDS_TEXT = """
    a about above after again all also am an and any are as at be because been before
    being below between both but by can could did do does doing down during each few for
    from further had has have having he her here hers him his how i if in into is it its
    itself just me more most my no nor not now of off on once only or other our ours out
    over own same she should so some such than that the their theirs them then there these
    they this those through to too under until up very was we were what when where which
    while who whom why will with would you your yours yourself please tell know want need
    get got let like can't don't i'm i've
"""
STOP_WORDS = frozenset(_STOP_WORDS_TEXT.split())
_WORD = re.compile(r"[^\W_]+(?:'[^\W_]+)?")  # keeps can't, company's together
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")
_LINE_MARKER = re.compile(r"^\s*(?:#{1,6}\s+|[-*+•]\s+|\d+[.)]\s+|>\s*)")
_MARKDOWN_SPECIAL = re.compile(r"([\\`*_\[\]])")


def stem(word: str) -> str:
    """A light English stemmer: enough to match refund/refunds/refunded, ship/shipping."""
    word = word.removesuffix("'s")
    if len(word) <= 3:
        return word
    if word.endswith("ies") and len(word) > 4:
        word = word[:-3] + "y"
    elif word.endswith(("sses", "ches", "shes", "xes", "zes")):
        word = word[:-2]
    elif word.endswith("s") and not word.endswith(("ss", "us", "is")):
        word = word[:-1]
    for suffix in ("ing", "ed", "ly"):
        if word.endswith(suffix) and len(word) - len(suffix) >= 3:
            word = word[: -len(suffix)]
            if len(word) > 3 and word[-1] == word[-2] and word[-1] not in "aeiouls":
                word = word[:-1]  # shipping → shipp → ship
            break
    if word.endswith("e") and len(word) > 4:
        word = word[:-1]  # change / changed / changing → chang
    return word


def terms(text: str) -> list[str]:
    words = _WORD.findall(text.lower().replace("\u2019", "'"))
    return [stem(w) for w in words if w not in STOP_WORDS]


@dataclass
class Sentence:
    passage: Passage
    position: int  # order within its passage
    text: str
    terms: frozenset[str]
    score: float = 0.0

    @property
    def words(self) -> int:
        return len(self.text.split())


def split_sentences(passage: Passage) -> list[Sentence]:
    sentences = []
    for line in passage.text.splitlines():
        line = _LINE_MARKER.sub("", line).strip()
        for piece in _SENTENCE_END.split(line):
            piece = piece.strip()
            if len(piece.split()) >= 3:
                sentences.append(Sentence(passage, len(sentences), piece, frozenset(terms(piece))))
    return sentences


def select(question: str, passages: list[Passage]) -> list[Sentence]:
    """The sentences to quote, grouped by passage (in the passages' order) and kept in
    their original order within a passage."""
    candidates = [s for p in passages[:TOP_PASSAGES] for s in split_sentences(p)]
    if not candidates:
        return []
    wanted = set(terms(question))
    df = Counter(t for s in candidates for t in s.terms & wanted)
    weight = {t: 1 + math.log(len(candidates) / df[t]) for t in df}
    total = sum(weight.values()) or 1.0
    rank = {id(p): i for i, p in enumerate(passages)}
    for s in candidates:
        matched = sum(weight[t] for t in s.terms & wanted)
        # Prefer the retriever's order slightly when sentences match equally well.
        s.score = matched / total - 0.05 * rank[id(s.passage)] if matched else 0.0
    ranked = sorted((s for s in candidates if s.score > 0), key=lambda s: -s.score)
    if not ranked:  # nothing in common (a vague question): open the best passage
        ranked = [s for s in candidates if s.passage is passages[0]]
    chosen: list[Sentence] = []
    budget = MAX_WORDS
    for s in ranked:
        if len(chosen) == MAX_SENTENCES or (chosen and s.score < RELATIVE_CUTOFF * chosen[0].score):
            break
        if s.words <= budget:
            chosen.append(s)
            budget -= s.words
        elif not chosen:
            words = s.text.split()[:MAX_WORDS]
            chosen.append(Sentence(s.passage, s.position, " ".join(words) + " …", s.terms))
            break
    return sorted(chosen, key=lambda s: (rank[id(s.passage)], s.position))


def compose(question: str, passages: list[Passage]) -> str:
    """The answer text in markdown, each quoted passage cited as [n]."""
    groups: dict[int, list[Sentence]] = {}
    for s in select(question, passages):
        groups.setdefault(id(s.passage), []).append(s)
    paragraphs = []
    for i, sentences in enumerate(groups.values()):
        passage = sentences[0].passage
        title = _MARKDOWN_SPECIAL.sub(r"\\\1", passage.title.strip())
        source = f"*{title}*" if title else None
        lead = "According to" if i == 0 else "Also, from"
        lead = f"{lead} {source}:" if source else ("" if i == 0 else "Also:")
        quoted = " ".join(s.text for s in sentences)
        paragraphs.append(f"{lead} {quoted} [{passage.number}]".strip())
    return "\n\n".join(paragraphs)


class ExtractiveProvider(Provider):
    """Offline answers quoted from `LLMRequest.passages`; `request.model` is ignored."""

    name = "extractive"

    async def stream(self, request: LLMRequest) -> AsyncIterator[Token | Usage]:
        if not request.passages:
            raise ValueError("the extractive provider answers from passages: none were given")
        question = request.question or (request.messages[-1].content if request.messages else "")
        answer = compose(question, request.passages)
        for word in re.findall(r"\s*\S+", answer):
            yield Token(word)
            await asyncio.sleep(0)  # let other conversations on the loop run
        prompt = "\n".join([question, *(p.text for p in request.passages)])
        yield Usage(estimate_tokens(prompt), estimate_tokens(answer), estimated=True)
