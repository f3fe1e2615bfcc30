"""The baseline every PII bench compares against: stock Presidio, as ``pii_eval.py`` builds it.

Default recognizers and the full spaCy pipeline of the same installed model Guard uses, so a
ratio compares the software, not the model.
"""

from __future__ import annotations

import logging
from typing import Any

ENTITIES = ["PERSON", "LOCATION", "EMAIL_ADDRESS", "PHONE_NUMBER", "CREDIT_CARD", "US_SSN",
            "IP_ADDRESS", "IBAN_CODE"]
"""The eight default entities of Guard's policies and of ``pii_eval.py``'s core labels."""


def stock_presidio(model_name: str | None = None) -> Any:
    """A warmed-up stock ``AnalyzerEngine`` over ``model_name`` (default: Guard's model)."""
    from presidio_analyzer import AnalyzerEngine
    from presidio_analyzer.nlp_engine import NlpEngineProvider

    from guard.pii.models import select_spacy_model

    logging.disable(logging.CRITICAL)
    conf = {"nlp_engine_name": "spacy",
            "models": [{"lang_code": "en", "model_name": model_name or select_spacy_model("auto")}]}
    engine = AnalyzerEngine(nlp_engine=NlpEngineProvider(nlp_configuration=conf).create_engine())
    engine.analyze(text="Warm up: John Smith, john@example.com", language="en")
    return engine
