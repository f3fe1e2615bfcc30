"""The recognizers Guard runs, built once per detector.

Presidio's pattern recognizers where they do well (SSN, IP, IBAN, URL, dates, ...), with
substitutions where they do not:

- email: Presidio's patterns, domain checked against the bundled public suffix list
  (never downloaded, see :mod:`guard.pii.offline`);
- phone numbers and card numbers: :mod:`guard.pii.phone` and :mod:`guard.pii.cards`, which
  know more formats and schemes and cost one regex scan instead of eight;
- and additions: street addresses (:mod:`guard.pii.address`), place names after locative
  phrases and country names (:mod:`guard.pii.places`), names after cue phrases
  (:mod:`guard.pii.names`).

The analyzer runs only the recognizers whose entities a request asks for.
"""

from __future__ import annotations

import re

from presidio_analyzer import EntityRecognizer
from presidio_analyzer.predefined_recognizers import (
    CryptoRecognizer,
    DateRecognizer,
    EmailRecognizer,
    IbanRecognizer,
    IpRecognizer,
    MacAddressRecognizer,
    MedicalLicenseRecognizer,
    NhsRecognizer,
    SpacyRecognizer,
    UrlRecognizer,
    UsBankRecognizer,
    UsItinRecognizer,
    UsLicenseRecognizer,
    UsPassportRecognizer,
    UsSsnRecognizer,
    UuidRecognizer,
)

from guard.pii.address import ADDRESS_CONTEXT, find_address_spans
from guard.pii.base import FinderRecognizer
from guard.pii.cards import CARD_CONTEXT, find_cards
from guard.pii.names import find_cued_names
from guard.pii.nlp import NER_ENTITIES
from guard.pii.offline import has_public_suffix
from guard.pii.phone import PHONE_CONTEXT, find_phone_numbers
from guard.pii.places import find_places


class OfflineEmailRecognizer(EmailRecognizer):
    """Presidio's email patterns, validated against the bundled public suffix list."""

    def validate_result(self, pattern_text: str) -> bool:
        return has_public_suffix(pattern_text)


def build_recognizers() -> list[EntityRecognizer]:
    """Every recognizer Guard can run; :data:`SUPPORTED_ENTITIES` is what they detect."""
    return [
        SpacyRecognizer(supported_entities=sorted(NER_ENTITIES)),
        FinderRecognizer(
            "GuardAddressRecognizer",
            "LOCATION",
            find_address_spans,
            "street address structure",
            ADDRESS_CONTEXT,
        ),
        FinderRecognizer(
            "GuardPlaceRecognizer",
            "LOCATION",
            find_places,
            "place name after a locative phrase, or a country name",
        ),
        FinderRecognizer("GuardNameRecognizer", "PERSON", find_cued_names, "name after a cue"),
        FinderRecognizer(
            "GuardPhoneRecognizer",
            "PHONE_NUMBER",
            find_phone_numbers,
            "phone number shape",
            PHONE_CONTEXT,
        ),
        FinderRecognizer(
            "GuardCardRecognizer",
            "CREDIT_CARD",
            find_cards,
            "card scheme prefix, length and Luhn check digit",
            CARD_CONTEXT,
        ),
        OfflineEmailRecognizer(),
        UsSsnRecognizer(),
        IpRecognizer(),
        # Case-insensitive, as Presidio's default registry configures it: chat is lowercase.
        IbanRecognizer(regex_flags=re.DOTALL | re.MULTILINE | re.IGNORECASE),
        UrlRecognizer(),
        DateRecognizer(),
        CryptoRecognizer(),
        MacAddressRecognizer(),
        UuidRecognizer(),
        MedicalLicenseRecognizer(),
        NhsRecognizer(),
        UsBankRecognizer(),
        UsItinRecognizer(),
        UsLicenseRecognizer(),
        UsPassportRecognizer(),
    ]


SUPPORTED_ENTITIES: frozenset[str] = frozenset(
    entity for recognizer in build_recognizers() for entity in recognizer.supported_entities
)
"""Entity names :meth:`PiiDetector.analyze` accepts."""
