"""The ``local`` provider, and the offline phrase-rule classifier it builds on.

Why it exists: Guard must moderate with no account and no internet (``guard serve`` offline,
tests, air-gapped sites). It downloads nothing, answers in about a millisecond for a short
prompt and gives the same scores for the same text every time. The provider scores with the
trained model of :mod:`guard.moderation.model` (see ``MODELS.md``); that model reads the
phrase rules below as features, and ``LocalModeration(classifier="rules")`` still scores with
the rules alone.

How the phrase-rule classifier (:func:`analyse`) works, in order:

1. Normalise: Unicode NFKC, case folding, accents and zero-width characters removed, curly
   quotes straightened; tokens are ``[a-z0-9]+``; contractions and chat spellings are
   expanded ("I'll" -> "i will", "gonna" -> "going to", "kms" -> "kill myself").
2. Phrase rules (:data:`~guard.moderation.local_rules.RULES`): regular expressions over the
   token text, whole words only. They carry the signal: "how do i make a pipe bomb", "kill my
   neighbour", "i want to kill myself", "<group> are vermin".
3. Lexicons, matched as whole words and phrases of up to four tokens (also after undoing
   digit/symbol spellings such as ``n1gg3r``): the project's hand-written category terms, a
   subset of the Surge AI profanity list (slurs by severity, abuse) and hand-written sexual
   terms. A lexicon alone is capped below 0.5, so single words never flag at the default
   threshold; severe slurs are the exception and flag ``hate`` on their own.
4. Context: an insult aimed at "you" is harassment; an attack verb just before a slur is
   hate/threatening; a sexual signal next to a minor ("12 year old", "child") is
   sexual/minors; a sub-category lifts its parent (self-harm/intent -> self-harm).
   Words such as "process", "game" or "photo" damp the "kill"/"shoot" rules.

Scores combine as a noisy-or (``1 - prod(1 - w)``): two independent cues score higher than
one, and nothing exceeds 1.

Limits, honestly: this is a keyword heuristic, not a model. It reads English only. It does
not understand negation ("I would never hurt myself" still scores), quotation, fiction,
news reporting or sarcasm; it misses paraphrase, misspellings beyond simple digit/symbol
swaps, spaced-out letters ("k i l l") and anything its lists do not name. Sexual terms used in
medicine or sex education can score, and reclaimed or quoted slurs score like slurs. It
cannot look at images: when images are sent every category is reported as unevaluated for
them. Expect both misses and false alarms; the trained model does better (``MODELS.md``), and
the ``openai`` provider better still where moderation matters.
"""

from __future__ import annotations

import asyncio
import json
import re
import unicodedata
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from importlib import resources
from types import MappingProxyType

from guard.errors import ConfigError
from guard.moderation import local_rules as R
from guard.moderation.base import CATEGORIES, ProviderScores

_MAX_NGRAM = 4
_DAMPING = 1 / 3
_OFFLOAD_CHARS = 4000
"""Above this many characters per call, scoring runs in a worker thread (a few ms of CPU)."""

_QUOTES = str.maketrans({
    "\u2019": "'", "\u2018": "'", "\u02bc": "'", "\u2032": "'", "`": "'", "\u00b4": "'",
    "\u200b": None, "\u200c": None, "\u200d": None, "\u2060": None, "\ufeff": None,
    "\u00ad": None,
})
_LEET = str.maketrans({"@": "a", "$": "s", "!": "i", "0": "o", "1": "i", "3": "e", "4": "a",
                       "5": "s", "7": "t"})
_OBFUSCATED = re.compile(r"[a-z0-9@$]*(?:[a-z][0-9@$]|[0-9@$][a-z])[a-z0-9@$]*(?:![a-z0-9@$]+)*")
"""A word mixing letters with digits or ``@``/``$`` (``k1ll``, ``n1gg3r``, ``@ss``)."""
_COMBINING = re.compile("[\u0300-\u036f\u1ab0-\u1aff\u1dc0-\u1dff\u20d0-\u20ff\ufe20-\ufe2f]")
_TOKEN = re.compile(r"[a-z0-9]+(?:'[a-z]+)*")
_SENTENCE_BREAK = re.compile(r"(?<=[.!?;:])\s+|[\r\n]+")

_WHOLE: Mapping[str, tuple[str, ...]] = {
    "won't": ("will", "not"), "can't": ("can", "not"), "shan't": ("shall", "not"),
    "ain't": ("is", "not"), "let's": ("let", "us"),
}
_SUFFIX: Mapping[str, str] = {"ll": "will", "m": "am", "re": "are", "ve": "have", "d": "would"}
_IS_WORDS = frozenset({"it", "he", "she", "that", "what", "there", "who", "where", "here",
                       "how", "this", "everything", "nothing", "life"})
_SLANG: Mapping[str, tuple[str, ...]] = {
    "gonna": ("going", "to"), "wanna": ("want", "to"), "gotta": ("got", "to"),
    "im": ("i", "am"), "ima": ("i", "am", "going", "to"), "imma": ("i", "am", "going", "to"),
    "u": ("you",), "ur": ("your",), "youre": ("you", "are"), "ive": ("i", "have"),
    "dont": ("do", "not"), "doesnt": ("does", "not"), "didnt": ("did", "not"),
    "cant": ("can", "not"), "cannot": ("can", "not"), "wont": ("will", "not"),
    "isnt": ("is", "not"), "arent": ("are", "not"), "wasnt": ("was", "not"),
    "wouldnt": ("would", "not"), "shouldnt": ("should", "not"), "couldnt": ("could", "not"),
    "kms": ("kill", "myself"), "kys": ("kill", "yourself"), "unalive": ("kill",),
    "unalived": ("killed",), "tonite": ("tonight",), "2nite": ("tonight",),
    "someones": ("someone", "s"), "somebodys": ("somebody", "s"),
}


def normalise(text: str) -> str:
    """Case-folded NFKC text without accents, zero-width characters or curly quotes."""
    text = unicodedata.normalize("NFKC", text).casefold().translate(_QUOTES)
    if not text.isascii():
        text = _COMBINING.sub("", unicodedata.normalize("NFKD", text))
    return text


def deobfuscate(normalised: str) -> str:
    """Undo digit and symbol spellings inside words ("k1ll" -> "kill"); numbers stay."""
    return _OBFUSCATED.sub(lambda m: m.group().translate(_LEET), normalised)


def _readings(sentence: str) -> list[list[str]]:
    """The sentence's tokens, plus a second reading when it has "k1ll"-style spellings."""
    tokens = tokenize(sentence)
    if not tokens:
        return []
    plain = deobfuscate(sentence)
    return [tokens] if plain == sentence else [tokens, tokenize(plain)]


def tokenize(normalised: str) -> list[str]:
    """Word tokens with contractions and chat spellings expanded (see module docstring)."""
    out: list[str] = []
    for token in _TOKEN.findall(normalised):
        if "'" in token:
            out.extend(_expand(token))
        else:
            out.extend(_SLANG.get(token, (token,)))
    return out


def _expand(token: str) -> tuple[str, ...]:
    if token in _WHOLE:
        return _WHOLE[token]
    if token.endswith("n't"):
        return (token[:-3], "not")
    head, _, tail = token.partition("'")
    if tail in _SUFFIX:
        return (*_SLANG.get(head, (head,)), _SUFFIX[tail])
    if tail == "s":
        # "it's" is "it is"; otherwise a possessive, kept as a separate "s" so that
        # "my friend's painting" is not read as the person "my friend".
        return (head, "is") if head in _IS_WORDS else (head, "s")
    return (token.replace("'", ""),)


# --- lexicon -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Entry:
    list_name: str
    strength: float


@dataclass(frozen=True, slots=True)
class _Hit:
    start: int
    end: int
    term: str
    entry: _Entry


def _phrase(term: str) -> str:
    return " ".join(tokenize(normalise(term)))


@cache
def _lexicon() -> Mapping[str, tuple[_Entry, ...]]:
    """Term -> entries, built once from the shipped data files and the project lists."""
    table: dict[str, list[_Entry]] = {}

    def add(term: str, list_name: str, strength: float = 1.0) -> None:
        key = _phrase(term)
        if key and len(key.split()) <= _MAX_NGRAM:
            table.setdefault(key, []).append(_Entry(list_name, strength))

    data = resources.files("guard.moderation").joinpath("data")
    terms = json.loads(data.joinpath("category_terms.json").read_text(encoding="utf-8"))
    for list_name, lists in terms["lists"].items():
        if list_name not in R.LEXICON_EFFECTS:
            continue  # "minor" matches too much on its own; see local_rules.MINOR
        for word in lists["words"]:
            add(word, list_name)
        for phrase in lists["phrases"]:
            add(phrase, list_name, R.PHRASE_STRENGTH.get(list_name, 1.0))
    for line in data.joinpath("surge_ai_terms.tsv").read_text(encoding="utf-8").splitlines():
        if not line or line.startswith("#"):
            continue
        term, role, severity = line.split("\t")
        strength = R.slur_weight(term, float(severity)) if role == "slur" else 1.0
        add(term, role, strength)
    for term in R.SEXUAL_EXPLICIT:
        add(term, "sexual_explicit")
    for term in R.SEXUAL_SUGGESTIVE:
        add(term, "sexual_suggestive")
    for term in R.HARASSMENT_EXTRA:
        add(term, "harass_extra")
    for term in R.ATTACK_VERBS:
        add(term, "attack_verb")
    return MappingProxyType({k: tuple(v) for k, v in table.items()})


@cache
def _first_tokens() -> frozenset[str]:
    return frozenset(term.split()[0] for term in _lexicon())


def _lexicon_hits(tokens: Sequence[str]) -> list[_Hit]:
    lexicon = _lexicon()
    starts = _first_tokens()
    hits: list[_Hit] = []
    for i in range(len(tokens)):
        if tokens[i] not in starts:
            continue
        for n in range(1, min(_MAX_NGRAM, len(tokens) - i) + 1):
            term = " ".join(tokens[i : i + n])
            for entry in lexicon.get(term, ()):
                hits.append(_Hit(i, i + n, term, entry))
    return hits


# --- scoring -------------------------------------------------------------------------------


@cache
def _compiled() -> tuple[tuple[R.Rule, re.Pattern[str]], ...]:
    return tuple((rule, re.compile(rule.pattern)) for rule in R.RULES)


@cache
def _context_patterns() -> tuple[re.Pattern[str], re.Pattern[str]]:
    return re.compile(R.BENIGN_CONTEXT), re.compile(R.MINOR)


def _noisy_or(weights: Iterable[float]) -> float:
    remaining = 1.0
    for weight in weights:
        remaining *= 1.0 - weight
    return 1.0 - remaining


@dataclass(frozen=True, slots=True)
class Analysis:
    """Scores for one text and the names of the rules and lexicons that produced them.

    ``reasons`` never contains text from the input, only rule and list names
    (``rule:attack_person``, ``lexicon:slur``, ``context:directed_insult``). ``minor`` says
    whether the text mentions a minor ("12 year old", "my daughter"), a feature of the
    trained model.
    """

    scores: Mapping[str, float]
    reasons: tuple[str, ...]
    minor: bool = False


def analyse(text: str) -> Analysis:
    """Score one text for every category in :data:`~guard.moderation.CATEGORIES`.

    Example::

        >>> analyse("how do I kill a python process").scores["violence"] < 0.5
        True
    """
    normalised = normalise(text)
    benign_re, minor_re = _context_patterns()
    rules = _compiled()
    matched: set[str] = set()
    hits: list[_Hit] = []
    directed = attack_on_slur = False
    # Phrases do not span sentences, so rules run per sentence and only where one of their
    # anchor words occurs: long texts cost little more than the sentences that matter.
    for sentence in _SENTENCE_BREAK.split(normalised):
        for tokens in _readings(sentence):
            joined = " ".join(tokens)
            words = set(tokens)
            for rule, regex in rules:
                if (
                    rule.name not in matched
                    and not rule.anchors.isdisjoint(words)
                    and regex.search(joined)
                ):
                    matched.add(rule.name)
            found = _lexicon_hits(tokens)
            directed = directed or _directed_insult(tokens, found)
            attack_on_slur = attack_on_slur or _attack_before_slur(found)
            hits += found

    plain_text = " ".join(tokenize(normalised))
    benign = benign_re.search(plain_text) is not None
    parts: dict[str, list[float]] = {c: [] for c in CATEGORIES}
    reasons: list[str] = []
    for rule, _ in rules:
        if rule.name in matched:
            factor = _DAMPING if rule.benign_dampened and benign else 1.0
            reasons.append(f"rule:{rule.name}")
            for category, weight in rule.scores.items():
                parts[category].append(weight * factor)

    by_list: dict[str, dict[str, float]] = {}
    for hit in hits:
        terms = by_list.setdefault(hit.entry.list_name, {})
        terms[hit.term] = max(terms.get(hit.term, 0.0), hit.entry.strength)
    for list_name, terms in sorted(by_list.items()):
        effects = R.LEXICON_EFFECTS.get(list_name, ())
        if effects:
            reasons.append(f"lexicon:{list_name}")
        factor = _DAMPING if list_name in R.DAMPENED_LISTS and benign else 1.0
        for category, weight in effects:
            score = _noisy_or(min(1.0, s * weight) for s in terms.values())
            parts[category].append(min(R.CAPS[list_name], score) * factor)

    if directed:
        reasons.append("context:directed_insult")
        parts["harassment"].append(0.75)
    if attack_on_slur:
        reasons.append("context:attack_on_slur")
        parts["hate/threatening"].append(0.85)
        parts["violence"].append(0.6)

    scores = {c: _noisy_or(parts[c]) for c in CATEGORIES}
    minor = minor_re.search(plain_text) is not None
    if scores["sexual"] > 0.0 and minor:
        reasons.append("context:sexual_with_minor")
        # Only a sexual signal that flags on its own is lifted: "porn addiction in
        # teenagers" is not a request for sexual content involving minors.
        sexual = scores["sexual"]
        lift = sexual + 0.4 if sexual >= 0.5 else sexual / 2
        scores["sexual/minors"] = max(scores["sexual/minors"], min(0.97, lift))
    for child, parent, share in R.IMPLIES:
        scores[parent] = max(scores[parent], scores[child] * share)
    return Analysis(MappingProxyType(scores), tuple(reasons), minor)


def _directed_insult(tokens: Sequence[str], hits: Sequence[_Hit]) -> bool:
    """An insult, slur or curse aimed at "you": "you are a fucking idiot", "fuck you"."""
    insult_starts = {
        h.start for h in hits if h.entry.list_name in ("insult", "abuse", "slur", "harass_extra")
    }
    for i, token in enumerate(tokens):
        if token not in R.YOU_WORDS:
            continue
        if i > 0 and tokens[i - 1] in R.EXPLETIVES_BEFORE_YOU:
            return True
        j = i + 1
        while j < len(tokens) and j - i <= 5:
            if j in insult_starts:
                return True
            if tokens[j] not in R.DIRECTED_FILLERS:
                break
            j += 1
    return False


def _attack_before_slur(hits: Sequence[_Hit]) -> bool:
    verbs = [h.end for h in hits if h.entry.list_name == "attack_verb"]
    slurs = [h.start for h in hits if h.entry.list_name == "slur" and h.entry.strength >= 0.8]
    return any(0 <= s - v <= 3 for v in verbs for s in slurs)


# --- provider ------------------------------------------------------------------------------


class LocalModeration:
    """The ``local`` provider: the trained offline model, maximum per category over texts.

    ``classifier="model"`` (the default) scores with the trained model of
    :mod:`guard.moderation.model`, which reads the phrase rules of this module as features;
    ``classifier="rules"`` scores with the phrase rules alone (:func:`analyse`), as Guard did
    before the model existed. Images cannot be judged offline, so when images are sent every
    category is reported as unevaluated (the texts are still scored). Model, lexicons and
    patterns are loaded in ``__init__``, at start-up, so the first request pays nothing extra.

    Example::

        provider = LocalModeration()
        scores = await provider.score(["I want to kill myself tonight"])
        scores.scores["self-harm/intent"]  # > 0.5
    """

    name = "local"

    def __init__(self, *, classifier: str = "model") -> None:
        if classifier not in ("model", "rules"):
            raise ConfigError(f"local moderation classifier must be 'model' or 'rules', "
                              f"got {classifier!r}")
        self.classifier = classifier
        _first_tokens()
        _compiled()
        _context_patterns()
        self._analyse: Callable[[str], Mapping[str, float]] = _rule_scores
        if classifier == "model":
            from guard.moderation.model import shipped_model

            self._analyse = shipped_model().score

    async def score(
        self,
        texts: Sequence[str],
        images: Sequence[str] = (),
        *,
        api_key: str | None = None,
    ) -> ProviderScores:
        if sum(len(t) for t in texts) > _OFFLOAD_CHARS:
            # Keep the event loop free for other requests while a long text is scanned.
            scores = await asyncio.to_thread(self.classify_many, texts)
        else:
            scores = self.classify_many(texts)
        unevaluated = frozenset(CATEGORIES) if images else frozenset()
        return ProviderScores(scores=scores, unevaluated=unevaluated)

    def classify_many(self, texts: Sequence[str]) -> dict[str, float]:
        """Highest score per category over ``texts``; empty when there are no texts."""
        maxima: dict[str, float] = {}
        for text in texts:
            for category, score in self._analyse(text).items():
                maxima[category] = max(maxima.get(category, 0.0), score)
        return maxima


def _rule_scores(text: str) -> Mapping[str, float]:
    return analyse(text).scores
