"""Guard's own recognizers as plain functions: what they find, and what they leave alone."""

from __future__ import annotations

import pytest

from guard.pii.address import find_addresses
from guard.pii.cards import find_cards, luhn_valid
from guard.pii.filters import refine_ner_span
from guard.pii.names import find_cued_names, propagate_names
from guard.pii.phone import find_phone_numbers
from guard.pii.places import find_places
from guard.values import Span

THRESHOLD = 0.5  # the policy default


def addresses(text: str) -> list[str]:
    return [text[m.start : m.end] for m in find_addresses(text) if m.score >= THRESHOLD]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "Ship it to 1600 Main Street, Springfield, IL 62704 please.",
            "1600 Main Street, Springfield, IL 62704",
        ),
        ("Our office: Unit 12, 450 Industrial Pkwy, Hayward, CA 94544.", None),
        ("Return to 35 Harbour St\nWellington 6011\nNew Zealand", None),
        ("Meine Adresse: Friedhofstrasse 33, 8048 Zürich", "Friedhofstrasse 33, 8048 Zürich"),
        ("Via dei Fiorentini 17, Roma", "Via dei Fiorentini 17, Roma"),
        ("Send it to ul. Zamkowa 33 Apt. 406", "ul. Zamkowa 33 Apt. 406"),
        ("PSC 6477, Box 2981\nAPO AE 83700", "PSC 6477, Box 2981\nAPO AE 83700"),
        ("mail to P.O. Box 287, Tallinn", "P.O. Box 287, Tallinn"),
        ("i live at 12 main street, springfield", "12 main street, springfield"),
    ],
)
def test_street_addresses_are_found_whole(text: str, expected: str | None) -> None:
    found = addresses(text)
    assert len(found) == 1
    if expected is not None:
        assert found == [expected]


@pytest.mark.parametrize(
    "text",
    [
        "It's a 10 minute drive, we walked 3 miles down the road.",
        "I upgraded to Windows 10 and Python 3 yesterday.",
        "Patient DOB 03/14/1962, MRN 00482913.",
        "Meet me on Monday 5 at 10:30.",
        "Chapter 5 covers the basics.",
    ],
)
def test_things_that_are_not_addresses_stay_below_the_threshold(text: str) -> None:
    assert addresses(text) == []


def test_a_weak_address_needs_more_structure_to_pass_the_threshold() -> None:
    assert addresses("Kaevu 94") == []
    assert addresses("30102 Kaevu 94\nNicosia, NI 61089") == ["30102 Kaevu 94\nNicosia, NI 61089"]


def phones(text: str) -> list[tuple[str, float]]:
    return [(text[a:b], s) for a, b, s in find_phone_numbers(text)]


@pytest.mark.parametrize(
    ("number", "score"),
    [
        ("+44 7700 900123", 0.7),
        ("+1-903-140-4508x769", 0.7),
        ("+41 (0)71 526 99 04", 0.7),
        ("(08) 8747 6301", 0.6),
        ("212-555-0142", 0.6),
        ("1-800-555-0199", 0.6),
        ("0490 39 07 81", 0.4),
        ("01.84.17.61.18", 0.4),
        ("5403926876", 0.3),
    ],
)
def test_phone_numbers_score_by_shape(number: str, score: float) -> None:
    assert phones(f"tel {number} ok") == [(number, score)]


@pytest.mark.parametrize(
    "text",
    [
        "on 2024-01-31 and 31.01.2024",
        "host 192.168.100.200",
        "SSN 078-05-1120",
        "ZIP 62704-1234",
        "order 55-10293",
        "MRN 00482913",
        "card 4111 1111 1111 1111",
        "version 1.2.3",
    ],
)
def test_numbers_that_are_something_else_are_not_phone_numbers(text: str) -> None:
    assert phones(text) == []


def test_a_phone_number_ends_before_a_dash_label() -> None:
    assert phones("07700 063 966-Fax") == [("07700 063 966", 0.4)]


@pytest.mark.parametrize(
    "number",
    [
        "4111 1111 1111 1111",  # Visa
        "4131034282458809939",  # Visa, 19 digits
        "2223000048400011",  # Mastercard 2-series
        "3782 822463 10005",  # American Express
        "213176828496175",  # JCB, 15 digits
        "6011-1111-1111-1117",  # Discover
    ],
)
def test_card_numbers_of_every_scheme_are_found(number: str) -> None:
    assert [(a, b, s) for a, b, s in find_cards(f"card {number}.")] == [(5, 5 + len(number), 0.9)]


def test_short_maestro_numbers_need_context_to_pass() -> None:
    assert find_cards("676222165679") == [(0, 12, 0.4)]


@pytest.mark.parametrize(
    "text",
    ["4111 1111 1111 1112", "1234567890123456", "4111-1111 1111-1111", "phone 5403926876"],
)
def test_numbers_failing_scheme_or_luhn_are_not_cards(text: str) -> None:
    assert find_cards(text) == []


def test_luhn_check() -> None:
    assert luhn_valid("79927398713")
    assert not luhn_valid("79927398710")


def names(text: str) -> list[str]:
    return [text[a:b] for a, b, _ in find_cued_names(text)]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Hi, my name is Siiri.", ["Siiri"]),
        ("my name is vitoria", ["vitoria"]),
        ("Dear Mr. Smith,", ["Smith"]),
        ("This is Dr. Ana de Souza speaking.", ["Ana de Souza"]),
        ("Book it under the name Okafor.", ["Okafor"]),
        ("Kenji and I are flying out.", ["Kenji"]),
        ("Priya Raman <priya@example.com> wrote:", ["Priya Raman"]),
        ("Name: Leidy T Muris\nPhone: 555", ["Leidy T Muris"]),
        ("What's your last name? Arcuri", ["Arcuri"]),
        ("surname: smith", ["smith"]),
        ("Please remove my kid Alina from the will.", ["Alina"]),
        ("Our landlord, Mr. Kowalczyk, called.", ["Kowalczyk"]),
    ],
)
def test_names_after_cues_are_found(text: str, expected: list[str]) -> None:
    assert names(text) == expected


@pytest.mark.parametrize(
    "text", ["Hi Team, hello World.", "Dear Sir or Madam", "this is great", "Thanks again!"]
)
def test_greetings_to_no_one_in_particular_are_not_names(text: str) -> None:
    assert names(text) == []


def test_a_found_name_is_marked_wherever_it_is_repeated() -> None:
    text = "Directed by Maciej Borkowski, starring Borkowski and Maciej's dog."
    first = Span(12, 28, "PERSON", 0.7)
    added = propagate_names(text, [first])
    assert sorted((s.start, text[s.start : s.end], s.score) for s in added) == [
        (39, "Borkowski", 0.7),
        (53, "Maciej", 0.7),
    ]


def test_the_other_items_of_a_list_of_names_are_names() -> None:
    text = "They had 6: Efimiya, Mary, Ariana, Isabel, Teresa and Jodi."
    found = [Span(text.index(n), text.index(n) + len(n), "PERSON", 0.7) for n in ("Mary", "Jodi")]
    added = propagate_names(text, found)
    assert sorted(text[s.start : s.end] for s in added) == ["Ariana", "Efimiya", "Isabel", "Teresa"]


def test_a_pair_with_one_name_makes_the_other_a_name_but_not_pronouns() -> None:
    text = "Olu and Ngozi Adeyemi are hosting. Kenji and I are flying."
    found = [
        Span(text.index("Ngozi"), text.index("Ngozi") + 13, "PERSON", 0.7),
        Span(text.index("Kenji"), text.index("Kenji") + 5, "PERSON", 0.75),
    ]
    assert [text[s.start : s.end] for s in propagate_names(text, found)] == ["Olu"]


def test_one_name_in_a_longer_list_is_not_enough() -> None:
    text = "Bring bread, Butter and Jam for Anna."
    found = [Span(text.index("Anna"), text.index("Anna") + 4, "PERSON", 0.7)]
    assert propagate_names(text, found) == []


def test_repeated_names_skip_text_already_covered() -> None:
    text = "Jane Doe, jane@doe.com"
    spans = [Span(0, 8, "PERSON", 0.7), Span(10, 22, "EMAIL_ADDRESS", 1.0)]
    assert propagate_names(text, spans) == []


def places(text: str) -> list[str]:
    return [text[a:b] for a, b, _ in find_places(text)]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Mr. Pavlovic flew to STAXROITH on Monday.", ["STAXROITH"]),
        ("I'm in Den Haag, at the conference", ["Den Haag"]),
        ("We moved here from Cite Guedouala", ["Cite Guedouala"]),
        ("She is originally from Tromsø.", ["Tromsø"]),
        ("We moved here from Slovenia", ["Slovenia"]),
    ],
)
def test_places_after_locative_phrases_and_countries_are_found(text: str, expected: list[str]) -> None:
    assert places(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "Forwarding this from Priya",
        "This gift is from Anna",
        "Jordan went to Chad",
        "The meeting is in Room 5",
        "i live here",
    ],
)
def test_words_that_only_look_like_places_are_not_places(text: str) -> None:
    assert places(text) == []


@pytest.mark.parametrize(
    ("text", "hit", "label", "expected"),
    [
        ("Call Jane Doe on Monday", "Call Jane Doe on", "PERSON", "Jane Doe"),
        ("Victoria Bruun\nPhone: 555", "Victoria Bruun\nPhone", "PERSON", "Victoria Bruun"),
        ("Hi John,", "Hi John,", "PERSON", "John"),
        ("PSC 0413, Box 8144", "Box 8144", "PERSON", None),
        ("in 2024", "2024", "LOCATION", None),
        ("on Main St. today", "Main St.", "LOCATION", "Main St."),
        ("Bill the copay to my card.", "Bill", "PERSON", None),
        ("Thanks. Summarise last week's report.", "Summarise", "PERSON", None),
        ("Bill paid the copay.", "Bill", "PERSON", "Bill"),
        ("How do I kill a stuck process on Linux?", "Linux", "LOCATION", None),
    ],
)
def test_ner_hits_are_trimmed_to_what_can_be_a_name(
    text: str, hit: str, label: str, expected: str | None
) -> None:
    start = text.index(hit)
    edges = refine_ner_span(text, start, start + len(hit), label)
    assert (text[edges[0] : edges[1]] if edges else None) == expected
