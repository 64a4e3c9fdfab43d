"""Hybrid retrieval: vector and full-text search fused, duplicates dropped, a calibrated
score that lets a threshold refuse, and nothing from another knowledge base or tenant."""

from __future__ import annotations

import pytest
from django.db import connection

from knowledge import services
from knowledge.models import Chunk, Document, KnowledgeBase, Source
from knowledge.retrieval import DEFAULT_THRESHOLD, Result, drop_duplicates, fuse, retrieve

HOURS = "We are open Monday to Friday from 9am to 5pm, and on Saturday mornings."
PETS = "Dogs are welcome in all our stores as long as they stay on a lead."
PUMP = (
    "When the display flashes red and the machine hums without brewing, the water pump has "
    "failed: order the replacement pump XK-9931-B from the service shop and let the machine "
    "cool down for ten minutes before fitting it."
)
# Short code-like passages: closer in embedding space to a bare part number than the long
# sentence above that actually holds it.
CODES = [
    "Filter cartridge FC-9931 fits all XK models.",
    "Order number format: AB-1234-C.",
    "Part MF-4410-C: milk frother.",
    "Part DK-1200-A: descaling kit.",
    "SKU 55-1021-Z ships within two days.",
    "Error E-17 means the tank is empty.",
    "Voltage 230 V, 50 Hz, 1450 W.",
]
FILLER = [
    "Our coffee machines brew espresso, lungo and cappuccino at the touch of a button.",
    "Descale the coffee machine every three months with the descaling tablets.",
    "The milk frother of the coffee machine is dishwasher safe.",
    "Coffee beans keep their aroma longest in an airtight container.",
    "The coffee machine's water tank holds 1.8 litres.",
    "Grind size changes how strong the coffee tastes.",
    "Clean the coffee machine's drip tray every day.",
    "The warranty on coffee machines is two years from the date of purchase.",
]


def add_texts(run_on_commit, kb: KnowledgeBase, texts: dict[str, str]) -> None:
    for title, text in texts.items():
        run_on_commit(services.add_text_source, kb, title, text)


def chunk_of(title: str) -> str:
    return Chunk.objects.get(document__title=title).id


@pytest.fixture
def shop(kb_a, run_on_commit) -> KnowledgeBase:
    texts = {"Hours": HOURS, "Pets": PETS}
    texts |= {f"Coffee {n}": text for n, text in enumerate(FILLER)}
    add_texts(run_on_commit, kb_a, texts)
    return kb_a


def test_hybrid_finds_an_exact_part_number_that_vectors_miss(kb_a, run_on_commit):
    add_texts(run_on_commit, kb_a, {"Pump": PUMP} | {f"Code {n}": t for n, t in enumerate(CODES)})
    pump = chunk_of("Pump")
    vector = retrieve([kb_a], "XK-9931-B", top_k=3, mode="vector")
    assert pump not in [r.chunk_id for r in vector]
    keyword = retrieve([kb_a], "XK-9931-B", top_k=3, mode="keyword")
    assert keyword[0].chunk_id == pump
    hybrid = {r.chunk_id: r for r in retrieve([kb_a], "XK-9931-B", top_k=3)}
    assert pump in hybrid
    # Its meaning is far from a bare code, but it holds every word of the query: the score
    # clears the default threshold all the same.
    assert hybrid[pump].vector_score < DEFAULT_THRESHOLD <= hybrid[pump].score


def test_hybrid_finds_a_paraphrase_that_keywords_miss(shop):
    question = "When can I visit your shop?"
    keyword = retrieve([shop], question, top_k=5, mode="keyword")
    assert chunk_of("Hours") not in [r.chunk_id for r in keyword]
    hybrid = retrieve([shop], question, top_k=3)
    assert hybrid[0].chunk_id == chunk_of("Hours")
    assert hybrid[0].vector_score is not None and hybrid[0].keyword_score is None


def test_reciprocal_rank_fusion_rewards_agreement():
    fused = fuse([["a", "b", "c"], ["c", "a"]], k=60)
    assert fused["a"] == pytest.approx(1 / 61 + 1 / 62)
    assert fused["c"] == pytest.approx(1 / 63 + 1 / 61)
    assert fused["b"] == pytest.approx(1 / 62)
    assert sorted(fused, key=fused.get, reverse=True) == ["a", "c", "b"]


def test_results_come_in_fused_order_with_scores_and_citations(shop):
    results = retrieve([shop], "Can I bring my dog to the store?", top_k=5)
    assert results[0].document["title"] == "Pets"
    assert [r.rrf for r in results] == sorted((r.rrf for r in results), reverse=True)
    assert all(0.0 <= r.score <= 1.0 for r in results)
    top = results[0].as_dict()
    assert set(top) == {
        "text", "score", "chunk_id", "heading_path", "page", "snippet", "vector_score",
        "keyword_score", "document",
    }  # fmt: skip
    assert set(top["document"]) == {"id", "title", "url", "source_id", "knowledge_base_id"}
    assert top["document"]["knowledge_base_id"] == shop.pk
    assert "dog" in top["snippet"].lower()


def test_the_same_passage_twice_is_returned_once(kb_a, run_on_commit):
    add_texts(
        run_on_commit,
        kb_a,
        {
            "Returns": "Items can be returned within 30 days with the receipt for a full refund.",
            "Returns (copy)": "Items can be returned within 30 days with the receipt for a full "
            "refund.",
            "Returns (quoted)": "Items can be returned within 30 days, with the receipt, for a "
            "full refund. Gift cards cannot be refunded.",
            "Shipping": "Parcels ship within two working days.",
        },
    )
    results = retrieve([kb_a], "Can I return an item for a refund?", top_k=5)
    texts = [r.text for r in results]
    assert sum("returned within 30 days" in text for text in texts) == 1
    assert len(results) == 2


def test_near_duplicates_are_dropped_in_order():
    def result(chunk_id: str, text: str) -> Result:
        return Result(chunk_id, text, 0.5, None, None, 0.0, [], None, "", {"id": chunk_id})

    words = " ".join(f"word{n}" for n in range(40))
    kept = drop_duplicates(
        [
            result("a", words),
            result("b", words.upper()),  # the same words
            result("c", words + " and three more words"),  # mostly a repeat of a
            result("d", "something else entirely, said in other words"),
        ]
    )
    assert [r.chunk_id for r in kept] == ["a", "d"]


def test_the_threshold_refuses_an_off_topic_question(shop):
    assert retrieve([shop], "Who painted the Mona Lisa?", threshold=DEFAULT_THRESHOLD) == []
    answered = retrieve([shop], "What are your opening hours?", threshold=DEFAULT_THRESHOLD)
    assert answered and answered[0].document["title"] == "Hours"
    assert all(r.score >= DEFAULT_THRESHOLD for r in answered)


def test_an_empty_query_or_no_knowledge_base_finds_nothing(shop):
    assert retrieve([shop], "   ") == []
    assert retrieve([], "opening hours") == []
    with pytest.raises(ValueError):
        retrieve([shop], "opening hours", mode="magic")


def test_it_never_returns_a_knowledge_base_it_was_not_given(kb_a, run_on_commit, drop_collections):
    other = KnowledgeBase.objects.create(name="Other")
    drop_collections.append(other.collection_name)
    add_texts(run_on_commit, kb_a, {"Hours": HOURS})
    add_texts(run_on_commit, other, {"Pets": PETS})
    for mode in ("hybrid", "vector", "keyword"):
        results = retrieve([kb_a], PETS, top_k=10, mode=mode)
        assert all(r.document["knowledge_base_id"] == kb_a.pk for r in results), mode
    assert retrieve([other], PETS, top_k=1)[0].document["title"] == "Pets"


def test_a_query_in_tenant_b_never_returns_tenant_a_chunks(
    kb_a, tenant_b, run_on_commit, drop_collections
):
    add_texts(run_on_commit, kb_a, {"Secret": "The vault combination is 4-8-15-16-23-42."})
    secret = set(Chunk.objects.values_list("id", flat=True))
    connection.set_tenant(tenant_b)
    kb_b = KnowledgeBase.objects.create(pk=kb_a.pk, name="Same id in B")  # ids collide
    drop_collections.append(kb_b.collection_name)
    add_texts(run_on_commit, kb_b, {"Public": "Our lobby is open to visitors every weekday."})
    for mode in ("hybrid", "vector", "keyword"):
        for kb in (kb_b, kb_a):  # even tenant A's own object, used from tenant B
            results = retrieve([kb], "vault combination 4-8-15-16-23-42", top_k=10, mode=mode)
            assert not secret & {r.chunk_id for r in results}, mode
            assert all(r.document["title"] == "Public" for r in results)


def test_several_passages_of_one_document_can_be_capped(kb_a, run_on_commit):
    long_text = "\n\n".join(
        f"## Step {n}\n\nCoffee brewing step {n}: " + "pour water slowly. " * 30 for n in range(6)
    )
    add_texts(run_on_commit, kb_a, {"Brewing": long_text, "Beans": FILLER[3]})
    uncapped = retrieve([kb_a], "coffee brewing steps", top_k=5, max_per_document=None)
    assert len({r.document["id"] for r in uncapped}) < len(uncapped)
    capped = retrieve([kb_a], "coffee brewing steps", top_k=5, max_per_document=1)
    assert len({r.document["id"] for r in capped}) == len(capped) == 2
    default = retrieve([kb_a], "coffee brewing steps", top_k=5)  # two per document
    assert [r.document["title"] for r in default].count("Brewing") == 2


def test_a_chunk_written_without_its_knowledge_base_gets_it_from_the_database(kb_a):
    source = Source.objects.create(knowledge_base=kb_a, kind=Source.Kind.TEXT, title="Raw")
    document = Document.objects.create(source=source, ref="raw", title="Raw")
    Chunk.objects.bulk_create([Chunk(id="raw-1", document=document, ordinal=0, text="Zebra.")])
    assert Chunk.objects.get(id="raw-1").knowledge_base_id == kb_a.pk
    assert [r.chunk_id for r in retrieve([kb_a], "zebra", mode="keyword")] == ["raw-1"]


def test_search_syntax_is_honoured(kb_a, run_on_commit):
    add_texts(
        run_on_commit,
        kb_a,
        {
            "Brewing": "Pour water slowly over the grounds.",
            "Garden": "Water the plants first, then pour yourself a coffee.",
        },
    )
    phrase = retrieve([kb_a], '"pour water"', mode="keyword")
    assert [r.document["title"] for r in phrase] == ["Brewing"]
    excluded = retrieve([kb_a], "water -plants", mode="keyword")
    assert [r.document["title"] for r in excluded] == ["Brewing"]
