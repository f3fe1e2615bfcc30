"""Placeholders: numbering, consistency, restoring, and never showing values."""

from __future__ import annotations

from guard.redact import PlaceholderMap, canonical_value, rewrite
from guard.values import Span


def test_placeholders_are_numbered_per_label_by_first_appearance() -> None:
    m = PlaceholderMap()
    assert m.placeholder_for("PERSON", "Ann") == "<PERSON_1>"
    assert m.placeholder_for("EMAIL_ADDRESS", "a@x.org") == "<EMAIL_ADDRESS_1>"
    assert m.placeholder_for("PERSON", "Bob") == "<PERSON_2>"
    assert m.placeholder_for("PERSON", "Ann") == "<PERSON_1>"


def test_same_value_written_differently_shares_a_placeholder() -> None:
    m = PlaceholderMap()
    assert m.placeholder_for("EMAIL_ADDRESS", "Ann@Example.org") == m.placeholder_for(
        "EMAIL_ADDRESS", "ann@example.org")
    assert m.placeholder_for("CREDIT_CARD", "4111 1111 1111 1111") == m.placeholder_for(
        "CREDIT_CARD", "4111-1111-1111-1111")
    assert canonical_value("EMAIL_ADDRESS", "ann\u200b@example.org") == "ann@example.org"


def test_restore_puts_back_the_first_spelling_and_leaves_unknown_placeholders() -> None:
    m = PlaceholderMap()
    m.placeholder_for("PERSON", "Ann Lee")
    assert m.restore("Dear <PERSON_1>, see <PERSON_7>.") == "Dear Ann Lee, see <PERSON_7>."


def test_repr_shows_counts_never_values() -> None:
    m = PlaceholderMap()
    m.placeholder_for("PERSON", "Ann Lee")
    assert "Ann" not in repr(m) and "PERSON" in repr(m)


def test_rewrite_keeps_everything_outside_spans_byte_for_byte() -> None:
    text = "Mail ann@x.org,\u00a0call me.\r\n"
    out = rewrite(text, [Span(5, 14, "EMAIL_ADDRESS", 1.0)], lambda s: "<EMAIL_ADDRESS_1>")
    assert out == "Mail <EMAIL_ADDRESS_1>,\u00a0call me.\r\n"
