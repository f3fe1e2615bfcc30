"""Clean-up of spaCy's PERSON and LOCATION hits.

A statistical NER model draws sloppy edges: "Call Jane Doe" (the verb included),
"Jamie Pratt\\n\\nPhone" (across lines), "Box 8144" (a person with digits). Masking the extra
words damages the prompt; masking a non-name hides nothing. The rules look at the hit and
the words around it, never at lists of people's or places' names, so they hold for any text:

- a name does not cross a line break: keep the first line of the hit that has letters;
- greeting, verb and label words at the edges are not part of a name ("Hi", "Call",
  "Phone"), nor are titles ("Mr.", "Dr.") or, in a capitalised hit, lower-case words
  ("Jane Doe on");
- a PERSON has no digits, and a hit without any letter is no name;
- a lone capitalised word opening a sentence and followed by a determiner or an object
  pronoun is an imperative verb, not a name: "Bill the copay to my card", "Summarise last
  week's report", "Mark it as done";
- the names of common software, platforms and services are neither people nor places,
  though the small model often says so ("a stuck process on Linux" → GPE). Prompts to a
  model are full of them, and masking them damages the prompt for nothing.
"""

from __future__ import annotations

import re

from guard.pii.address import NOT_PLACE

_REFINED_LABELS = frozenset({"PERSON", "LOCATION"})
# Deliberately without names that are also people's: Claude, Ruby, Swift, Jenkins, ...
_TECH_TERMS_TEXT = """
    linux windows macos osx ios android ubuntu debian fedora centos redhat unix freebsd
    python java javascript typescript rust golang go php perl kotlin scala haskell
    c++ c# sql postgres postgresql mysql sqlite mongodb redis kafka spark hadoop elasticsearch
    docker kubernetes k8s helm terraform ansible nginx apache git github gitlab bitbucket
    jira confluence slack zoom teams outlook gmail excel word powerpoint notion
    figma chrome firefox safari edge aws azure gcp heroku vercel netlify cloudflare openai
    chatgpt gpt gemini llama bash zsh powershell vim emacs vscode xcode npm pip
    conda pandas numpy pytorch tensorflow django flask fastapi react angular vue node nodejs
    json yaml html css http https api oauth ssh wifi bluetooth usb
"""
_TECH_TERMS = frozenset(_TECH_TERMS_TEXT.split())
_EDGE_WORD = re.compile(
    rf"(?:{NOT_PLACE}|Call|Ask|Tell|Contact|Meet|Ping|Text|Message|Attn|Cc|Bcc|Mr|Mrs|Ms|Mx"
    rf"|Miss|Dr|Prof|Sir|Madam|Dame|Lord|Lady|Rev|Hon)\.?"
)
_WORD = re.compile(r"[^\s]+")
_STRIP = " \t\r\n>*•·|-:;,.!?\"'()[]{}"


def refine_ner_span(text: str, start: int, end: int, label: str) -> tuple[int, int] | None:
    """The part of the NER hit ``text[start:end]`` that can be a ``label``, or ``None``."""
    if label not in _REFINED_LABELS:
        return start, end
    # First line with a letter.
    for line in re.finditer(r"[^\n]+", text[start:end]):
        if any(c.isalpha() for c in line.group()):
            start, end = start + line.start(), start + line.end()
            break
    else:
        return None
    words = [(start + m.start(), start + m.end()) for m in _WORD.finditer(text[start:end])]
    cased = any(c.isupper() for c in text[start:end])
    while words and _is_edge_word(text[words[0][0] : words[0][1]], cased):
        words.pop(0)
    while words and _is_edge_word(text[words[-1][0] : words[-1][1]], cased):
        words.pop()
    if not words:
        return None
    start, end = words[0][0], words[-1][1]
    while start < end and text[start] in _STRIP:
        start += 1
    while end > start and text[end - 1] in _STRIP and not _keeps_final_dot(text, start, end):
        end -= 1
    value = text[start:end]
    if not any(c.isalpha() for c in value) or value.casefold() in _TECH_TERMS:
        return None
    if label == "PERSON" and (any(c.isdigit() for c in value) or _is_imperative(text, start, end)):
        return None
    return start, end


_SENTENCE_START = re.compile(r"(?:^|[.!?\n])[ \t\"'(>*-]*$")
_AFTER_IMPERATIVE = re.compile(
    r"[ \t]+(?:the|a|an|my|your|our|their|his|her|its|this|that|these|those|last|next|all"
    r"|every|each|any|some|me|us|them|it|him)\b"
)


def _is_imperative(text: str, start: int, end: int) -> bool:
    """Whether the one-word hit ``text[start:end]`` opens a sentence as a verb."""
    if " " in text[start:end]:
        return False
    return bool(
        _SENTENCE_START.search(text, max(0, start - 10), start) and _AFTER_IMPERATIVE.match(text, end)
    )


def _is_edge_word(word: str, cased: bool) -> bool:
    """A word that cannot start or end a name: "Call", "Phone:", "on" (in a cased hit)."""
    bare = word.strip(_STRIP)
    return bool(_EDGE_WORD.fullmatch(bare)) or (cased and bare.islower())


def _keeps_final_dot(text: str, start: int, end: int) -> bool:
    """ "St." or "Jr." keep their dot; a sentence's full stop is not part of the name."""
    if text[end - 1] != ".":
        return False
    word = text[start:end].split()[-1]
    return len(word) <= 4 and word[:-1].isalpha() and word[0].isupper()
