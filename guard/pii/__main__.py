"""``python -m guard.pii``: PII spans for JSON lines on stdin (see :mod:`guard.pii.spans`).

    echo '{"text": "Call Jane on 212-555-0142"}' | python -m guard.pii --entities PERSON

Defaults are the policy defaults: the eight core entities and ``--min-score 0.5``.
"""

from __future__ import annotations

import argparse
import logging
import sys

from guard.errors import ConfigError
from guard.pii.detector import get_detector
from guard.pii.recognizers import SUPPORTED_ENTITIES
from guard.pii.spans import write_spans

DEFAULT_ENTITIES = (
    "PERSON",
    "LOCATION",
    "EMAIL_ADDRESS",
    "PHONE_NUMBER",
    "CREDIT_CARD",
    "US_SSN",
    "IP_ADDRESS",
    "IBAN_CODE",
)
DEFAULT_MIN_SCORE = 0.5


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m guard.pii",
        description='Read JSON lines {"text": ...} on stdin; write one JSON list of spans '
        '{"start", "end", "label", "score"} per line on stdout.',
    )
    parser.add_argument(
        "--entities",
        default=",".join(DEFAULT_ENTITIES),
        help=f"comma-separated entities (default: %(default)s; supported: "
        f"{', '.join(sorted(SUPPORTED_ENTITIES))})",
    )
    parser.add_argument("--model", default="auto", help="spaCy package name (default: auto)")
    parser.add_argument(
        "--min-score",
        type=float,
        default=DEFAULT_MIN_SCORE,
        help="drop spans scoring below this (default: %(default)s, the policy default)",
    )
    args = parser.parse_args(argv)
    entities = [e.strip() for e in args.entities.split(",") if e.strip()]
    unknown = sorted(set(entities) - SUPPORTED_ENTITIES)
    if unknown:  # before loading spaCy: fail in milliseconds, not seconds
        print(f"guard.pii: unknown entities: {', '.join(unknown)}", file=sys.stderr)
        return 2
    # This is an application edge, so it may configure logging: Presidio warns per text
    # about things that are not problems for this command.
    logging.basicConfig(level=logging.ERROR, stream=sys.stderr)
    try:
        detector = get_detector(args.model)
        write_spans(sys.stdin, sys.stdout, detector, entities, args.min_score)
    except (ConfigError, ValueError) as exc:
        print(f"guard.pii: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
