"""Rule-based stand-ins for unstructured's NLP helpers, so parsing never downloads a model.

unstructured 0.27 decides "title or narrative text?" with spaCy's ``en_core_web_sm``, which it
downloads from GitHub and installs into site-packages on first use: that fails offline and
changes the environment at run time. Its heuristics only ask how many sentences a block has,
what its words are and whether any word is a verb, so small rules answer those questions
here. ``install()`` must run before unstructured's partitioners are imported; it puts this
module's functions where ``unstructured.nlp.tokenize`` would be, so spaCy is never imported.
"""

from __future__ import annotations

import importlib
import re
import sys
import types
from functools import lru_cache


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


# A sentence ends at . ! or ? (optionally closed by quotes/brackets) followed by whitespace and
# something that can start a sentence.
_SENTENCE_BREAK_RE = re.compile(
    "(?<=[.!?])[\"'\u201d\u2019)\\]]*\\s+(?=[\"'\u201c\u2018(\\[]?[A-Z0-9])"
)
_WORD_RE = re.compile("\\w+(?:['\u2019]\\w+)*|[^\\w\\s]")
# Abbreviations that end with a period but rarely end a sentence.
_ABBREVIATIONS = _words(
    "mr mrs ms dr prof st vs etc e.g i.e no fig inc ltd co jr sr approx dept est"
)

_AUXILIARIES = _words(
    """am is are was were be been being has have had having do does did done will would shall
    should can could may might must isn't aren't wasn't weren't hasn't haven't hadn't doesn't
    don't didn't won't wouldn't can't cannot couldn't shouldn't mustn't it's that's there's
    we're they're you're i'm we've they've i've we'll they'll you'll"""
)
# Common verbs in base form: enough to tell "We ship orders daily" (narrative) from
# "Shipping policy" (title), which is all the classifier needs.
_COMMON_VERBS = _words(
    """accept access add allow answer apply arrive ask assign become begin believe
book bring build buy call cancel change charge check choose click close come compare complete
connect contact contain continue cost cover create cut decide deliver describe design
develop die disable do download drive eat email enable end enter expect explain fall feel fill
find finish fit follow forget get give go grow happen help hold import include increase install
keep know last learn leave let like live log look lose make manage mean meet move need offer
open order own pay plan play prefer prepare press print process produce protect provide publish
put reach read receive recommend reduce refund register remain remember remove replace reply
report request require reset return run save say see seem select sell send serve set share ship
show sign sit sleep speak spend stand start stay stop store submit suggest support take talk
teach tell think travel try turn type understand update upgrade upload use verify visit wait
want watch wear win wish work write"""
)
_IRREGULAR_FORMS = _words(
    """ate bought brought built came chose cut did drove fell felt found gave
went grew held kept knew left lost made meant met paid put read said saw sent set shown sold
spent stood sat slept spoke took taught told thought understood won wore wrote begun become
chosen done driven eaten fallen given gone grown known taken written spoken seen"""
)


def _inflections(verb: str) -> set[str]:
    stem = verb[:-1] if verb.endswith("e") else verb
    forms = {verb, verb + "s", verb + "es", verb + "ed", verb + "d", stem + "ing", stem + "ed"}
    if verb.endswith("y"):
        forms |= {verb[:-1] + "ies", verb[:-1] + "ied"}
    # Consonant doubling (stop -> stopped, plan -> planning) on short verbs.
    if len(verb) <= 4 and verb[-1] not in "aeiouwxy" and verb[-2] in "aeiou":
        forms |= {verb + verb[-1] + "ed", verb + verb[-1] + "ing"}
    return forms


# Past forms are verbs wherever they appear; base, -s and -ing forms double as nouns
# ("refund policy", "shipping and returns"), so they count as verbs only in context.
_PAST_FORMS = frozenset(_AUXILIARIES.union(_IRREGULAR_FORMS))
_AMBIGUOUS_FORMS = frozenset().union(*(_inflections(verb) for verb in _COMMON_VERBS))
_SUBJECT_PRONOUNS = _words("i you we they he she it who which that")
_VERB_CUES = _AUXILIARIES | _words("to please not never also always often then")
_DETERMINERS = _words(
    "the a an your our their my his her its this that these those some any all each every no"
)
_FUNCTION_WORDS = _DETERMINERS | _words(
    "and or but of for in on at by with from into about as than per via"
)
# Inflected forms of verbs built with productive suffixes: "organized", "simplifies".
_VERB_SUFFIX_RE = re.compile(r"(?:[iy]z|if)(?:es|ed|ing)$|(?:ifies|ified)$")


@lru_cache(maxsize=512)
def _sentences(text: str) -> tuple[str, ...]:
    pieces: list[str] = []
    start = 0
    for match in _SENTENCE_BREAK_RE.finditer(text):
        candidate = text[start : match.start()].strip()
        last_word = candidate.rsplit(None, 1)[-1].rstrip(".").lower() if candidate else ""
        if last_word in _ABBREVIATIONS or len(last_word) == 1:
            continue
        pieces.append(candidate)
        start = match.end()
    tail = text[start:].strip()
    if tail:
        pieces.append(tail)
    return tuple(pieces)


def sent_tokenize(text: str) -> list[str]:
    return list(_sentences(text))


@lru_cache(maxsize=512)
def word_tokenize(text: str) -> list[str]:
    return _WORD_RE.findall(text)


def _is_verb(words: list[str], index: int) -> bool:
    word = words[index]
    if word in _PAST_FORMS or _VERB_SUFFIX_RE.search(word):
        return True
    if word.endswith("ed") and word in _AMBIGUOUS_FORMS:
        return True
    previous = words[index - 1] if index else ""
    following = words[index + 1] if index + 1 < len(words) else ""
    if previous in _SUBJECT_PRONOUNS or previous in _VERB_CUES:
        # "we refund", "to reset": a pronoun or auxiliary before it makes any word a verb.
        return word.isalpha()
    if word not in _AMBIGUOUS_FORMS:
        return False
    if index == 0:
        # An imperative: "Reset your password", "Click the button".
        return following in _DETERMINERS
    # "The store sells shoes": an -s form after a noun phrase, not after "and"/"of"/...
    return (
        word.endswith("s")
        and index >= 2
        and previous.isalpha()
        and previous not in (_FUNCTION_WORDS)
    )


@lru_cache(maxsize=512)
def pos_tag(text: str) -> list[tuple[str, str]]:
    """Penn-style tags, but only VB (verb) or NN (anything else) are ever assigned."""
    tokens = word_tokenize(text)
    words = [token.lower() for token in tokens]
    return [(token, "VB" if _is_verb(words, index) else "NN") for index, token in enumerate(tokens)]


def _refuse_model_load() -> None:
    raise RuntimeError("Loading a spaCy model is disabled: parsing must work offline.")


_SHIM_ATTRS = {"sent_tokenize": sent_tokenize, "word_tokenize": word_tokenize, "pos_tag": pos_tag}


def install() -> None:
    """Route unstructured's tokenizer and tagger to the rules above (idempotent)."""
    module = sys.modules.get("unstructured.nlp.tokenize")
    if module is None:
        # Importing the real module imports spaCy (about 2 s) only for us to replace it.
        module = types.ModuleType("unstructured.nlp.tokenize", __doc__)
        sys.modules["unstructured.nlp.tokenize"] = module
    else:
        # Someone imported the real module first: make sure it can never fetch its model.
        module._get_nlp = _refuse_model_load  # type: ignore[attr-defined]
    for name, function in _SHIM_ATTRS.items():
        setattr(module, name, function)
    # text_type binds the names at import time, so patch them there as well.
    text_type = importlib.import_module("unstructured.partition.text_type")
    for name, function in _SHIM_ATTRS.items():
        setattr(text_type, name, function)
