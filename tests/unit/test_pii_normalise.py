"""Normalisation for detection: NFKC, invisible characters removed, exact offset maps."""

from __future__ import annotations

import pytest

from guard.pii import normalise
from guard.pii.normalise import is_invisible, normalise_text
from guard.pii.segments import split_segments


def test_ascii_text_is_unchanged_with_an_identity_map() -> None:
    assert normalise("Call 555-0142") == ("Call 555-0142", list(range(14)))


def test_zero_width_space_is_removed_and_the_map_skips_it() -> None:
    text, index_map = normalise("john\u200b@example.com")
    assert text == "john@example.com"
    assert index_map[:5] == [0, 1, 2, 3, 5]
    assert index_map[-1] == len("john\u200b@example.com")


@pytest.mark.parametrize(
    "char",
    [
        "\u200b",
        "\u200c",
        "\u200d",
        "\u200e",
        "\u200f",
        "\u2060",
        "\u2063",
        "\ufeff",
        "\u00ad",
        "\u202a",
        "\u202e",
        "\u2066",
        "\u2069",
        "\u034f",
        "\ufe0f",
        "\U000e0041",
    ],
)
def test_invisible_and_format_characters_are_removed(char: str) -> None:
    assert is_invisible(char)
    assert normalise(f"a{char}b")[0] == "ab"


def test_ligature_expansion_maps_both_letters_to_the_ligature() -> None:
    text, index_map = normalise("a\ufb01le")  # "aﬁle"
    assert text == "afile"
    assert index_map == [0, 1, 1, 2, 3, 4]


def test_full_width_digits_become_ascii_digits_one_to_one() -> None:
    original = "\uff10\uff17\uff17\uff10\uff10 \uff19\uff10\uff10\uff11\uff12\uff13"
    text, index_map = normalise(original)
    assert text == "07700 900123"
    assert index_map == list(range(len(original) + 1))


def test_combining_accent_is_composed_and_mapped_to_its_base_letter() -> None:
    text, index_map = normalise("Jose\u0301 Ruiz")
    assert text == "José Ruiz"
    assert index_map[3] == 3
    assert index_map[4] == 5  # the space after the two-character cluster


def test_non_breaking_space_becomes_a_space() -> None:
    assert normalise("Jane\u00a0Doe")[0] == "Jane Doe"


def test_a_slice_maps_back_over_inner_invisible_characters_only() -> None:
    original = "\u200bjo\u200bhn\u200b here"
    norm = normalise_text(original)
    start = norm.text.index("john")
    assert norm.to_original(start, start + 4) == (1, 6)
    assert original[1:6] == "jo\u200bhn"


def test_a_slice_ending_inside_an_expansion_covers_the_whole_source_character() -> None:
    norm = normalise_text("\ufb01x")  # "ﬁx" -> "fix"
    assert norm.to_original(0, 1) == (0, 1)  # just "f" -> the whole "ﬁ"


def test_map_has_one_entry_per_normalised_character_plus_the_end() -> None:
    original = "\u202eJane\u202c \uff21\u0301 \u00adx"
    text, index_map = normalise(original)
    assert len(index_map) == len(text) + 1
    assert index_map[-1] == len(original)
    assert index_map == sorted(index_map)


@pytest.mark.parametrize(
    ("text", "cuts"),
    [
        ("para one.\n\npara two is here", [11]),
        ("line one is\nline two and more", [12]),
        ("one two three four five six", [19]),
        ("x" * 40, [20]),
    ],
)
def test_long_texts_are_cut_at_the_weakest_boundary(text: str, cuts: list[int]) -> None:
    segments = split_segments(text, max_chars=20)
    assert [offset for offset, _ in segments][1:] == cuts
    assert "".join(segment for _, segment in segments) == text
    assert all(len(segment) <= 20 for _, segment in segments)
