"""The offline embeddings model: deterministic vectors, and the API's bounds on a request."""

from __future__ import annotations

from guard.offline import MAX_DIMENSIONS, embeddings_problem, offline_embeddings


def test_dimensions_beyond_any_model_are_refused_not_built() -> None:
    # Found by the spec fuzz tests: dimensions=4011279 made the offline model build (and
    # send) a 36 MB vector, blocking the server meanwhile.
    assert embeddings_problem({"input": "x", "dimensions": 4_011_279}) == \
        f"'dimensions' must be an integer from 1 to {MAX_DIMENSIONS}."
    assert embeddings_problem({"input": "x", "dimensions": 0}) is not None
    assert embeddings_problem({"input": "x", "dimensions": True}) is not None
    assert embeddings_problem({"dimensions": 8}) == "'input' is required."
    assert embeddings_problem({"input": ["a", "b"], "dimensions": MAX_DIMENSIONS}) is None


def test_vectors_have_the_dimensions_asked_and_depend_only_on_the_text() -> None:
    first = offline_embeddings({"input": ["a", "b"], "dimensions": 40})
    assert [len(d["embedding"]) for d in first["data"]] == [40, 40]
    assert first == offline_embeddings({"input": ["a", "b"], "dimensions": 40})
    assert first["data"][0]["embedding"] != first["data"][1]["embedding"]
