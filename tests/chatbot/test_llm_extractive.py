"""The extractive provider: offline answers quoted from the retrieved passages, cited [n];
and the offline token estimate."""

from __future__ import annotations

import asyncio
import re

import pytest

from chatbot.llm import ChatMessage, LLMRequest, Passage, Token, Usage, estimate_tokens
from chatbot.llm import get_provider as _get_provider
from chatbot.llm.extractive import MAX_WORDS, compose, stem

SHIPPING = Passage(
    4,
    "# Shipping\nWe ship worldwide from our warehouse in Lyon. Orders placed before 2 pm ship "
    "the same day. Standard delivery takes 3 to 5 business days in Europe. Express delivery "
    "takes 1 to 2 days and costs 15 euros.",
    "Shipping FAQ",
    "https://example.com/shipping",
)
RETURNS = Passage(
    7,
    "You can return any unused item within 30 days of delivery for a full refund. Refunds "
    "are issued to the original payment method within 5 business days of receiving the "
    "return. Sale items cannot be returned.",
    "Returns & refunds",
    "https://example.com/returns",
)
CONTACT = Passage(
    9,
    "Our support team answers on weekdays from 9 am to 6 pm. Write to help@example.com.",
    "Contact",
    "https://example.com/contact",
)


def answer(question: str, passages: list[Passage]) -> tuple[list[str], Usage]:
    request = LLMRequest(
        system="",
        messages=[ChatMessage("user", question)],
        model="extractive",
        question=question,
        passages=passages,
    )

    async def drain() -> tuple[list[str], Usage]:
        tokens, usages = [], []
        async for item in _get_provider("extractive").stream(request):
            (tokens if isinstance(item, Token) else usages).append(item)
        assert len(usages) == 1 and isinstance(usages[0], Usage)
        return [token.text for token in tokens], usages[0]

    return asyncio.run(drain())


def cited(text: str) -> set[int]:
    return {int(n) for n in re.findall(r"\[(\d+)\]", text)}


def test_it_answers_from_the_relevant_passage_and_cites_its_number():
    tokens, usage = answer("Can I get a refund for a sale item?", [RETURNS, SHIPPING, CONTACT])
    text = "".join(tokens)

    assert text.startswith("According to *Returns & refunds*:")
    assert "Sale items cannot be returned." in text
    assert cited(text) == {7}  # Passage.number, not the position in the list
    assert usage.estimated and usage.input_tokens > 0 and usage.output_tokens > 0


def test_it_cites_each_passage_it_quotes_and_only_those():
    question = "How long does delivery take, and when is my refund issued?"

    text = "".join(answer(question, [SHIPPING, RETURNS, CONTACT])[0])

    assert cited(text) == {4, 7}
    assert "delivery takes 3 to 5 business days" in text
    assert "Refunds are issued" in text
    assert text.index("[4]") < text.index("Also, from *Returns & refunds*:") < text.index("[7]")


def test_it_keeps_the_original_order_of_sentences_within_a_passage():
    # The express sentence matches best, but the standard one comes first in the passage.
    text = compose("What does express delivery cost, and standard?", [SHIPPING])

    assert text.index("Standard delivery") < text.index("Express delivery takes 1 to 2 days")


def test_it_stays_short():
    long_passage = Passage(
        1, " ".join(["Delivery is fast and the parcel is tracked."] * 60), "", ""
    )

    text = compose("delivery", [long_passage, SHIPPING])

    assert len(text.split()) <= MAX_WORDS + 10  # the quoted words, plus lead-in and citation


def test_it_streams_word_sized_tokens_that_join_into_the_answer():
    tokens, usage = answer("How long does delivery take?", [SHIPPING])

    assert len(tokens) > 10
    assert all(len(token.split()) == 1 for token in tokens)
    assert "".join(tokens) == compose("How long does delivery take?", [SHIPPING])
    assert usage.output_tokens == estimate_tokens("".join(tokens))


def test_a_question_with_nothing_in_common_opens_the_best_passage():
    text = compose("hello", [CONTACT, SHIPPING])

    assert text.startswith("According to *Contact*: Our support team")
    assert cited(text) == {9}


def test_titles_are_escaped_for_markdown():
    passage = Passage(1, "Refunds take five business days to arrive.", "Terms *and* [rules]", "")

    assert compose("refunds", [passage]).startswith(r"According to *Terms \*and\* \[rules\]*:")


def test_it_refuses_to_answer_without_passages():
    with pytest.raises(ValueError, match="passages"):
        answer("anything?", [])


def test_light_stemming_matches_word_forms():
    assert {stem(w) for w in ["refund", "refunds", "refunded"]} == {"refund"}
    assert {stem(w) for w in ["ship", "ships", "shipping", "shipped"]} == {"ship"}
    assert stem("policies") == stem("policy")


def test_the_token_estimate_is_about_four_characters_a_token():
    prose = (
        "Parley answers visitors' questions from a company's own documents, and hands the "
        "conversation to a person when it cannot. "
    ) * 10

    estimate = estimate_tokens(prose)

    assert estimate_tokens("") == 0
    assert 0.75 * len(prose) / 4 <= estimate <= 1.35 * len(prose) / 4
    assert estimate_tokens("配送には三日かかります") >= 10  # one per character, about
