"""Invalid bodies through the proxy: always a 4xx with an OpenAI-shaped error, never a 5xx
or a hang (every request has a client timeout far above what any of them needs)."""

from __future__ import annotations

import json
from typing import Any

import httpx2
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.fuzz.conftest import FuzzProxy
from tests.support.openapi_strategies import body_strategy

USER = '{"role":"user","content":"My email is dana.whitlock@example.net"}'
HEAD = '{"model":"gpt-4o-mini","messages":[' + USER + ']'

CASES: dict[str, bytes] = {
    "empty": b"",
    "not_json": b"{model: gpt-4o-mini}",
    "truncated": HEAD.encode(),
    "array": b"[]",
    "string": b'"hello"',
    "null": b"null",
    "invalid_utf8": (HEAD[:-2] + "\xff\xfe" + HEAD[-2:] + "}").encode("latin-1"),
    "overlong_utf8": HEAD.encode()[:-3] + b"\xc0\xaf" + b'"}]}',
    "duplicate_messages": (HEAD + ',"messages":[{"role":"user","content":"hi"}]}').encode(),
    "duplicate_in_message": (b'{"model":"m","messages":[{"role":"user","content":"a@b.example",'
                             b'"content":"hi"}]}'),
    "nan": (HEAD + ',"temperature":NaN}').encode(),
    "infinity": (HEAD + ',"top_p":Infinity}').encode(),
    "minus_infinity": (HEAD + ',"temperature":-Infinity}').encode(),
    "deep_nesting": (HEAD + ',"metadata":' + "[" * 100_000 + "]" * 100_000 + "}").encode(),
    "deep_objects": (HEAD + ',"x":' + '{"a":' * 5000 + "1" + "}" * 5000 + "}").encode(),
    "deep_content": ('{"model":"m","messages":[{"role":"user","content":'
                     + "[" * 300 + "]" * 300 + "}]}").encode(),
    "ten_megabyte_string": (HEAD + ',"user":"' + "x" * 10_000_000 + '"}').encode(),
    "messages_not_a_list": b'{"model":"m","messages":"hello"}',
    "messages_empty": b'{"model":"m","messages":[]}',
    "message_not_an_object": b'{"model":"m","messages":[1]}',
    "role_missing": b'{"model":"m","messages":[{"content":"hi"}]}',
    "content_number": b'{"model":"m","messages":[{"role":"user","content":5}]}',
    "content_part_without_type": b'{"model":"m","messages":[{"role":"user","content":[{"text":"x"}]}]}',
    "lone_surrogate": b'{"model":"m","messages":[{"role":"user","content":"\\ud800 hi"}]}',
    "lone_low_surrogate_in_key": b'{"model":"m","messages":[{"role":"user","content":"hi"}],'
                                 b'"\\udc00":1}',
}


def assert_openai_4xx(response: httpx2.Response) -> None:
    assert 400 <= response.status_code < 500, (response.status_code, response.text[:300])
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert isinstance(error["message"], str) and error["message"]
    assert "Traceback" not in response.text


def post(proxy: FuzzProxy, content: bytes) -> httpx2.Response:
    return httpx2.post(f"{proxy.base_url}/chat/completions", content=content, timeout=30,
                       headers={"content-type": "application/json"})


@pytest.mark.parametrize("case", sorted(CASES))
def test_invalid_body_gets_an_openai_shaped_4xx(fuzz_proxy: FuzzProxy, case: str) -> None:
    before = len(fuzz_proxy.upstream.chat_requests)
    response = post(fuzz_proxy, CASES[case])
    assert_openai_4xx(response)
    assert len(fuzz_proxy.upstream.chat_requests) == before  # nothing went upstream


def test_huge_arrays_are_bounded_by_the_limits(fuzz_proxy: FuzzProxy) -> None:
    many = '{"model":"m","messages":[' + ",".join([USER] * 60_000) + "]}"
    assert_openai_4xx(post(fuzz_proxy, many.encode()))  # over 4 MiB: 413
    stops = '{"model":"m","messages":[' + USER + '],"stop":[' + ",".join(['"x"'] * 100_000) + "]}"
    response = post(fuzz_proxy, stops.encode())
    assert response.status_code < 500  # not a field Guard reads: the upstream judges it


def _paths(value: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [path]
    if isinstance(value, dict):
        for key, item in value.items():
            found += _paths(item, (*path, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found += _paths(item, (*path, index))
    return found


OTHER_TYPES = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False),
                        st.text(max_size=5), st.lists(st.integers(), max_size=2),
                        st.dictionaries(st.text(max_size=3), st.integers(), max_size=2))


@st.composite
def wrongly_typed(draw: st.DrawFn) -> dict[str, Any]:
    """A valid chat body with one value (anywhere) replaced by one of another JSON type."""
    body = draw(body_strategy("CreateChatCompletionRequest"))
    path = draw(st.sampled_from(_paths(body)[1:]))
    node: Any = body
    for part in path[:-1]:
        node = node[part]
    old = node[path[-1]]
    new = draw(OTHER_TYPES.filter(lambda v: type(v) is not type(old)))
    node[path[-1]] = new
    return body


@given(wrongly_typed())
def test_wrong_types_anywhere_never_get_a_5xx(fuzz_proxy: FuzzProxy, body: dict[str, Any]) -> None:
    response = post(fuzz_proxy, json.dumps(body).encode())
    if response.status_code >= 400:
        assert_openai_4xx(response)
    else:
        assert response.status_code == 200
