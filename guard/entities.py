"""Names of the PII entity types a policy may list, and the defaults.

Kept free of heavy imports so a policy can be validated without loading the NER model.
"""

from __future__ import annotations

KNOWN_ENTITIES: frozenset[str] = frozenset(
    {
        # Found by the NER model (with Presidio's context and our own checks).
        "PERSON",
        "LOCATION",
        "NRP",
        "ORGANIZATION",
        "DATE_TIME",
        # Found by patterns with checksums or validation.
        "EMAIL_ADDRESS",
        "PHONE_NUMBER",
        "CREDIT_CARD",
        "IBAN_CODE",
        "IP_ADDRESS",
        "URL",
        "CRYPTO",
        "MAC_ADDRESS",
        "UUID",
        "MEDICAL_LICENSE",
        "UK_NHS",
        "US_SSN",
        "US_ITIN",
        "US_PASSPORT",
        "US_DRIVER_LICENSE",
        "US_BANK_NUMBER",
    }
)

DEFAULT_ENTITIES: tuple[str, ...] = (
    "PERSON",
    "EMAIL_ADDRESS",
    "PHONE_NUMBER",
    "CREDIT_CARD",
    "US_SSN",
    "IBAN_CODE",
    "IP_ADDRESS",
    "LOCATION",
)
"""What the default policy looks for. DATE_TIME, URL and ORGANIZATION are left out on purpose:
masking them ("quarterly", "last week", a docs link, a product name) damages ordinary prompts
far more often than it protects anyone."""


NER_BACKED: frozenset[str] = frozenset({"PERSON", "LOCATION", "NRP", "ORGANIZATION", "DATE_TIME"})
"""Entities that need the NER model (and the name and address recognizers around it); the
``fast`` profile leaves them out."""
