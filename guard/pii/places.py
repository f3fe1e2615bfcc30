"""Place names that spaCy's small model misses or calls a person, and countries.

A locative phrase before a capitalised name makes it a place: "flew to Tromsø",
"I'm in KAJAANI", "based in Guéret", "originally from Den Haag". English puts a place there,
so the name is reported as ``LOCATION`` and scores above a bare NER hit (0.7) on the same
words, which the small model often labels ``PERSON``.

A country mentioned in passing identifies no one, and masking it damages ordinary prompts
("What is the capital of <LOCATION_1>?"). So a country name that the NER model found on its
own scores :data:`COUNTRY_SCORE`, under the policy default threshold (see
:func:`is_country`); a country tied to someone by a locative phrase ("I moved here from
Norway") is found by the cue above and keeps its score. A caller who wants every country
masked lowers ``min_score``. Towns, streets and addresses are unaffected.
"""

from __future__ import annotations

import re

from guard.pii.address import CAPITALISED_WORD, CONNECTOR, NOT_PLACE, UPPER

CUE_SCORE = 0.75
COUNTRY_SCORE = 0.4
"""The most a bare country name scores: under the policy default (0.5), see module."""

_CUE = (
    r"(?<![\w'\u2019])(?i:"
    r"(?:live[sd]?|living|based|born|raised|grew[ \t]+up|located|situated|stay(?:s|ed|ing)?"
    r"|settled|moved(?:[ \t]+(?:here|back|over))?|moving|relocat(?:ed|ing)|emigrated"
    r"|flew|flying|fly|travel(?:l)?(?:ed|ing)|arrived|arriving|arrive|landed|headed|heading"
    r"|returned|returning|commut(?:e|es|ed|ing)|drove|driving|headquartered|trip|vacation"
    r"|holiday|stationed|studying|studied|works?[ \t]+remotely)"
    r"[ \t]+(?:back[ \t]+)?(?:in|to|from|at|near|into|outside(?:[ \t]+of)?)"
    # "I'm from", "she is from" — not "the gift is from Anna"
    r"|(?:(?:i'?m|i[ \t]+am|we'?re|we[ \t]+are|you'?re|you[ \t]+are|he'?s|she'?s|they'?re"
    r"|(?:he|she|they|we|i)[ \t]+(?:is|are|was|were|come|comes|came))[ \t]+"
    r"(?:currently[ \t]+|now[ \t]+)?|originally[ \t]+)from"
    r"|(?:i'?m|i[ \t]+am|we'?re|we[ \t]+are)[ \t]+(?:currently[ \t]+|now[ \t]+|still[ \t]+)?in"
    r"|(?:city|town|village|suburb|municipality)[ \t]+of"
    r")[ \t]+"
)
_PLACE_WORD = rf"(?!{NOT_PLACE}\b)(?:{CAPITALISED_WORD}|{UPPER}{{2,}})"
_NEXT_PLACE_WORD = rf"(?:(?:[ \t]+|-)(?:{_PLACE_WORD}|{CONNECTOR}(?=[ \t]+{UPPER})))"
_CUE_RE = re.compile(
    rf"{_CUE}(?P<place>{_PLACE_WORD}{_NEXT_PLACE_WORD}{{0,3}})"
    r"(?![\w'\u2019@])"
)

COUNTRIES: frozenset[str] = frozenset(
    """
    Afghanistan;Albania;Algeria;Andorra;Angola;Argentina;Armenia;Australia;Austria;
    Azerbaijan;Bahamas;Bahrain;Bangladesh;Barbados;Belarus;Belgium;Belize;Benin;Bhutan;
    Bolivia;Bosnia and Herzegovina;Botswana;Brazil;Brunei;Bulgaria;Burkina Faso;Burundi;
    Cambodia;Cameroon;Canada;Cape Verde;Central African Republic;Chile;China;Colombia;
    Comoros;Costa Rica;Croatia;Cuba;Cyprus;Czechia;Czech Republic;Denmark;Djibouti;
    Dominican Republic;Ecuador;Egypt;El Salvador;Equatorial Guinea;Eritrea;Estonia;
    Eswatini;Ethiopia;Fiji;Finland;France;Gabon;Gambia;Germany;Ghana;Greece;Greenland;
    Grenada;Guatemala;Guinea-Bissau;Guyana;Haiti;Honduras;Hong Kong;Hungary;Iceland;India;
    Indonesia;Iran;Iraq;Ireland;Italy;Ivory Coast;Jamaica;Japan;Kazakhstan;Kenya;Kosovo;
    Kuwait;Kyrgyzstan;Laos;Latvia;Lebanon;Lesotho;Liberia;Libya;Liechtenstein;Lithuania;
    Luxembourg;Madagascar;Malawi;Malaysia;Maldives;Malta;Mauritania;Mauritius;Mexico;
    Micronesia;Moldova;Monaco;Mongolia;Montenegro;Morocco;Mozambique;Myanmar;Namibia;
    Nepal;Netherlands;New Zealand;Nicaragua;Nigeria;North Korea;North Macedonia;Norway;
    Oman;Pakistan;Palestine;Panama;Papua New Guinea;Paraguay;Peru;Philippines;Poland;
    Portugal;Puerto Rico;Qatar;Romania;Russia;Rwanda;Saudi Arabia;Senegal;Serbia;
    Seychelles;Sierra Leone;Singapore;Slovakia;Slovenia;Somalia;South Africa;South Korea;
    South Sudan;Spain;Sri Lanka;Sudan;Suriname;Sweden;Switzerland;Syria;Taiwan;Tajikistan;
    Tanzania;Thailand;Timor-Leste;Tunisia;Turkmenistan;Uganda;Ukraine;United Arab Emirates;
    United Kingdom;United States;United States of America;Uruguay;Uzbekistan;Venezuela;
    Vietnam;Yemen;Zambia;Zimbabwe;USA;UK;UAE
    """.replace("\n", " ").split(";")
) - {""}
"""English names of countries (and USA, UK, UAE)."""

_COUNTRY_KEYS = frozenset(name.strip().casefold() for name in COUNTRIES)


def is_country(value: str) -> bool:
    """Whether ``value`` is just a country's name ("France", "the UK", "NEW ZEALAND").

    >>> is_country("the Netherlands"), is_country("Paris")
    (True, False)
    """
    key = " ".join(value.split()).casefold()
    return key.removeprefix("the ") in _COUNTRY_KEYS


def find_places(text: str) -> list[tuple[int, int, float]]:
    """``(start, end, score)`` of place names after a locative phrase in ``text``.

    >>> find_places("I flew to Tromsø last week, then back to Norway.")
    [(10, 16, 0.75)]
    """
    return [(m.start("place"), m.end("place"), CUE_SCORE) for m in _CUE_RE.finditer(text)]
