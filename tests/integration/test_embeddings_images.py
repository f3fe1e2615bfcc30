"""Embeddings and image inputs through the proxy with the official SDK, over real HTTP."""

from __future__ import annotations

import base64
from typing import Any

import openai
import pytest

from guard.testing import FakeUpstream
from tests.integration.conftest import ClientFactory, ProxyFactory
from tests.support.sdk import assert_no_pii, records

DOCS = ["Maria Gonzalez reported a late delivery.", "Contact: maria.gonzalez@example.org",
        "The parcel arrived on time."]

EMBEDDINGS = """
version: 1
name: emb
pii: {embeddings: ACTION}
"""

IMAGES = """
version: 1
name: img
images: {action: ACTION, max_data_url_bytes: 2048}
"""

PNG = "data:image/png;base64," + base64.b64encode(b"\x89PNG\r\n\x1a\n" + bytes(64)).decode()


@pytest.mark.parametrize(("action", "sent"), [
    (None, ["[PERSON] reported a late delivery.", "Contact: [EMAIL_ADDRESS]",
            "The parcel arrived on time."]),
    ("pseudonymise", ["<PERSON_1> reported a late delivery.", "Contact: <EMAIL_ADDRESS_1>",
                      "The parcel arrived on time."]),
])
def test_embedding_inputs_reach_the_upstream_without_pii(
        proxy: ProxyFactory, upstream: FakeUpstream, openai_client: ClientFactory,
        action: str | None, sent: list[str]) -> None:
    base_url, guard, sink = proxy(EMBEDDINGS.replace("ACTION", action) if action else None)
    result = openai_client(base_url).embeddings.create(model="text-embedding-3-small", input=DOCS)
    assert [len(d.embedding) for d in result.data] == [8, 8, 8]
    (request,) = upstream.requests  # embeddings are not moderated: one request only
    assert request.path == "/v1/embeddings" and request.body["input"] == sent
    (record,) = records(guard, sink)
    assert record["route"] == "/v1/embeddings" and record["decision"] == "redact"
    assert record["input_entities"] == {"PERSON": 1, "EMAIL_ADDRESS": 1}
    assert record["moderation"] == {"input": None, "output": None}
    assert record["usage"]["prompt_tokens"] > 0
    assert_no_pii(request.body, record, values=["Maria Gonzalez", "maria.gonzalez@example.org"])


def test_embeddings_block_policy_refuses_with_guard_pii(
        proxy: ProxyFactory, upstream: FakeUpstream,
        openai_client: ClientFactory) -> None:
    base_url, guard, sink = proxy(EMBEDDINGS.replace("ACTION", "block"))
    with pytest.raises(openai.BadRequestError) as info:
        openai_client(base_url).embeddings.create(model="text-embedding-3-small", input=DOCS[1])
    assert info.value.code == "guard.pii"
    assert not upstream.requests
    (record,) = records(guard, sink)
    assert record["status"] == "blocked" and record["input_entities"] == {"EMAIL_ADDRESS": 1}


def test_token_id_inputs_are_refused_as_unscannable(
        proxy: ProxyFactory, upstream: FakeUpstream,
        openai_client: ClientFactory) -> None:
    base_url, guard, sink = proxy()
    with pytest.raises(openai.BadRequestError) as info:
        openai_client(base_url).embeddings.create(model="text-embedding-3-small", input=[[15339, 1917]])
    assert info.value.code == "guard.unscannable_input" and info.value.param == "input"
    assert not upstream.requests
    (record,) = records(guard, sink)
    assert record["status"] == "rejected"


def _moderation_inputs(upstream: FakeUpstream) -> list[Any]:
    return [r.body["input"] for r in upstream.requests if r.path.endswith("/moderations")]


def test_chat_image_goes_to_moderation_and_unjudged_categories_are_recorded(
        proxy: ProxyFactory, upstream: FakeUpstream,
        openai_client: ClientFactory) -> None:
    base_url, guard, sink = proxy()
    openai_client(base_url).chat.completions.create(model="gpt-4o-mini", messages=[
        {"role": "user", "content": [{"type": "text", "text": "What is this?"},
                                     {"type": "image_url", "image_url": {"url": PNG}}]}])
    (moderated,) = _moderation_inputs(upstream)
    assert {"type": "image_url", "image_url": {"url": PNG}} in moderated
    (record,) = records(guard, sink)
    verdict = record["moderation"]["input"]
    assert verdict["outcome"] == "pass"
    assert "hate" in verdict["unevaluated"] and "violence" not in verdict["unevaluated"]
    assert PNG not in str(record)


def test_responses_input_image_flagged_by_moderation_is_blocked(
        proxy: ProxyFactory, upstream: FakeUpstream,
        openai_client: ClientFactory) -> None:
    base_url, guard, sink = proxy()
    with pytest.raises(openai.BadRequestError) as info:
        openai_client(base_url).responses.create(model="gpt-4o-mini", input=[{"role": "user", "content": [
            {"type": "input_text", "text": "Describe it."},
            {"type": "input_image", "image_url": "https://img.example/kill-scene.png"}]}])
    assert info.value.code == "guard.moderation"
    assert not [r for r in upstream.requests if r.path.endswith("/responses")]
    (record,) = records(guard, sink)
    assert record["moderation"]["input"]["flagged"] == ["violence"]
    assert "hate" in record["moderation"]["input"]["unevaluated"]


@pytest.mark.parametrize(("action", "image", "code"), [
    ("block", "https://img.example/cat.png", "guard.policy"),
    ("moderate", "data:image/png;base64," + "A" * 4096, "guard.image_too_large"),
])
def test_images_refused_by_policy_get_a_clear_400(
        proxy: ProxyFactory, upstream: FakeUpstream, openai_client: ClientFactory,
        action: str, image: str, code: str) -> None:
    base_url, guard, sink = proxy(IMAGES.replace("ACTION", action))
    with pytest.raises(openai.BadRequestError) as info:
        openai_client(base_url).responses.create(model="gpt-4o-mini", input=[{"role": "user", "content": [
            {"type": "input_image", "image_url": image}]}])
    assert info.value.code == code and "input[0].content[0].image_url" in info.value.message
    assert not upstream.requests
    (record,) = records(guard, sink)
    assert record["status"] == "blocked" and record["code"] == code


def test_images_allow_sends_them_upstream_unmoderated(
        proxy: ProxyFactory, upstream: FakeUpstream,
        openai_client: ClientFactory) -> None:
    base_url, guard, sink = proxy(IMAGES.replace("ACTION", "allow"))
    openai_client(base_url).responses.create(model="gpt-4o-mini", input=[{"role": "user", "content": [
        {"type": "input_text", "text": "Describe it."},
        {"type": "input_image", "image_url": "https://img.example/kill-scene.png"}]}])
    assert _moderation_inputs(upstream) == [["Describe it."]]
    sent = upstream.requests[-1].body["input"][0]["content"][1]
    assert sent == {"type": "input_image", "image_url": "https://img.example/kill-scene.png"}
    (record,) = records(guard, sink)
    assert record["decision"] == "allow" and record["moderation"]["input"]["unevaluated"] == []
