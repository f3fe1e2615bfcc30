"""The policy keys for embeddings and images: values, short forms and clear errors."""

from __future__ import annotations

import pytest

from guard.errors import PolicyError
from guard.policy import load_policy, parse_policy

HEAD = "version: 1\nname: t\n"


def test_defaults_mask_embeddings_and_moderate_images() -> None:
    policy = parse_policy(HEAD)
    assert policy.pii.embeddings == "mask"
    assert (policy.images.action, policy.images.max_data_url_bytes) == ("moderate", 4 * 1024 * 1024)
    shipped = load_policy("default")
    assert shipped.pii.embeddings == "mask" and shipped.images.action == "moderate"


def test_short_forms_and_the_british_spelling_are_accepted() -> None:
    policy = parse_policy(HEAD + "images: block\npii: {embeddings: pseudonymise}\n")
    assert policy.images.action == "block" and policy.pii.embeddings == "pseudonymize"


def test_embeddings_action_applies_only_on_the_embeddings_api_and_never_loosens() -> None:
    pii = parse_policy(HEAD + "pii: {embeddings: block, per_entity: {LOCATION: allow, "
                              "US_SSN: block, PERSON: mask}}\n").pii
    assert pii.action_for("PERSON") == "mask" and pii.action_for("PERSON", "embeddings") == "block"
    assert pii.action_for("EMAIL_ADDRESS", "chat") == "pseudonymize"
    assert pii.action_for("LOCATION", "embeddings") == "allow"
    assert pii.action_for("US_SSN", "embeddings") == "block"


@pytest.mark.parametrize(("yaml_text", "expected"), [
    ("images: maybe\n", "test.yaml:3: images.action: Input should be 'allow', 'moderate' or 'block'"),
    ("images: {max_data_url_bytes: 0}\n",
     "test.yaml:3: images.max_data_url_bytes: Input should be greater than 0"),
    ("images: {action: block, size: 3}\n",
     "test.yaml:3: images.size: unknown key; allowed here: action, max_data_url_bytes"),
    ("pii:\n  embeddings: hash\n",
     "test.yaml:4: pii.embeddings: Input should be 'mask', 'pseudonymize' or 'block'"),
])
def test_bad_values_name_the_line_the_key_and_what_is_allowed(yaml_text: str, expected: str) -> None:
    with pytest.raises(PolicyError) as info:
        parse_policy(HEAD + yaml_text, source="test.yaml")
    assert info.value.problems == [expected]
