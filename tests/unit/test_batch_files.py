"""Batch building blocks: maps encryption, the maps format, lines, multipart, placeholders."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from guard.batch.crypto import BatchKeyError, MapsFileError, batch_key, decrypt, encrypt
from guard.batch.files import split_lines
from guard.batch.lines import BatchFileError, parse_requests, parse_results
from guard.batch.maps import BatchMaps, LineMaps
from guard.batch.multipart import FormError, Part, encode_form, parse_form
from guard.batch.store import MapsStore
from guard.redact import PlaceholderMap

KEY = "a-passphrase-long-enough"


def test_maps_round_trip_encrypted_and_values_never_in_the_bytes(tmp_path: Path) -> None:
    maps = BatchMaps("gb_1", {"name": "default", "sha256": "ab"}, {
        "r1": LineMaps(1, "/v1/chat/completions", {"<PERSON_1>": "Maria Gonzalez"}),
        "r2": LineMaps(2, "/v1/completions", {}, ("guard.unsupported_url", "withheld")),
    })
    path = tmp_path / "m.maps"
    maps.save(path, KEY)
    assert b"Maria" not in path.read_bytes() and b"r1" not in path.read_bytes()
    assert path.stat().st_mode & 0o777 == 0o600
    loaded = BatchMaps.load(path, KEY)
    assert loaded.lines == maps.lines and loaded.ref == "gb_1"
    assert "Maria" not in repr(loaded)


def test_a_wrong_key_or_one_altered_byte_fails_without_a_partial_result() -> None:
    sealed = encrypt(b"secret maps", KEY)
    assert decrypt(sealed, KEY) == b"secret maps"
    with pytest.raises(MapsFileError, match="not the one it was written with"):
        decrypt(sealed, KEY + "x")
    altered = bytearray(sealed)
    altered[-5] ^= 1
    with pytest.raises(MapsFileError, match="altered"):
        decrypt(bytes(altered), KEY)
    with pytest.raises(MapsFileError, match="not a Guard batch maps file"):
        decrypt(b'{"lines": {}}', KEY)
    assert encrypt(b"x", KEY) != encrypt(b"x", KEY), "fresh salt and nonce every time"


def test_the_key_comes_from_the_environment_or_a_key_file(tmp_path: Path) -> None:
    with pytest.raises(BatchKeyError, match="GUARD_BATCH_KEY"):
        batch_key({})
    with pytest.raises(BatchKeyError, match="shorter than 16"):
        batch_key({"GUARD_BATCH_KEY": "short"})
    (tmp_path / "key").write_text(KEY + "\n")
    assert batch_key({"GUARD_BATCH_KEY_FILE": str(tmp_path / "key")}) == KEY
    with pytest.raises(BatchKeyError, match="could not be read"):
        batch_key({"GUARD_BATCH_KEY_FILE": str(tmp_path / "missing")})


def test_placeholder_maps_restore_after_a_round_trip() -> None:
    original = PlaceholderMap()
    first = original.placeholder_for("PERSON", "Maria Gonzalez")
    restored = PlaceholderMap.from_originals(original.originals())
    assert restored.restore(f"Hello {first}, <PERSON_2> unknown") == \
        "Hello Maria Gonzalez, <PERSON_2> unknown"
    assert restored.placeholder_for("PERSON", "maria  gonzalez") == first
    assert restored.placeholder_for("PERSON", "Aisha Okafor") == "<PERSON_2>"


def test_lines_split_on_newlines_only_so_json_may_hold_line_separators() -> None:
    line = json.dumps({"custom_id": "a", "method": "POST", "url": "/v1/chat/completions",
                       "body": {"messages": [{"role": "user", "content": "one\u2028two"}]}},
                      ensure_ascii=False)
    (request,) = parse_requests(split_lines((line + "\r\n").encode(), source="f"))
    assert request.body["messages"][0]["content"] == "one\u2028two"
    with pytest.raises(BatchFileError, match="byte 0: the file is not UTF-8"):
        split_lines(b"\xff\xfe", source="f")


def test_result_lines_need_a_response_or_an_error() -> None:
    ok = json.dumps({"custom_id": "a", "response": {"status_code": 200, "body": {}}})
    failed = json.dumps({"custom_id": "b", "response": None, "error": {"code": "x"}})
    parsed = parse_results([ok, failed])
    assert [(r.custom_id, r.status_code) for r in parsed] == [("a", 200), ("b", None)]
    with pytest.raises(BatchFileError) as info:
        parse_results([json.dumps({"custom_id": "c", "response": {"body": {}}}),
                       json.dumps({"custom_id": "d"})])
    assert info.value.problems == [
        "line 1: 'response' must be null or an object with an integer 'status_code' and a 'body'",
        "line 2: has neither a 'response' nor an 'error'"]


def test_multipart_forms_parse_and_encode_in_memory() -> None:
    parts = [Part("purpose", b"batch"), Part("file", b'{"a": 1}\r\n--x\n', "in.jsonl",
                                                 "application/jsonl")]
    body, content_type = encode_form(parts)
    assert parse_form(body, content_type) == parts
    with pytest.raises(FormError, match="closing boundary"):
        parse_form(body[:-12], content_type)
    with pytest.raises(FormError, match="multipart/form-data"):
        parse_form(body, "application/json")


def test_the_store_refuses_ids_that_are_not_file_ids(tmp_path: Path) -> None:
    store = MapsStore(tmp_path / "maps", KEY)
    assert (tmp_path / "maps").stat().st_mode & 0o777 == 0o700
    assert not store.has_maps("../etc/passwd")
    assert store.linked("../../x") is None
    store.link("file-out", "file-unknown", "batch_1", "output")  # no maps: no link
    assert store.linked("file-out") is None
