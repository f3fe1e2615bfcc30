"""The policy file: pydantic models of the YAML, loading with precise errors, and its hash.

A policy is data; nothing here builds detectors or talks to the network. Validation errors
name the file, the line, the key path and what is allowed, because policy authors fix them
in an editor, not in a debugger.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from guard.entities import DEFAULT_ENTITIES, KNOWN_ENTITIES, NER_BACKED
from guard.errors import PolicyError
from guard.moderation.base import CATEGORIES as MODERATION_CATEGORIES

PiiAction = Literal["pseudonymize", "mask", "block", "allow"]
EmbeddingsPiiAction = Literal["mask", "pseudonymize", "block"]
ImagesAction = Literal["allow", "moderate", "block"]
DEFAULT_MAX_IMAGE_BYTES = 4 * 1024 * 1024
RuleAction = Literal["block", "redact", "warn"]

MODERATION_PROVIDERS: tuple[str, ...] = ("openai", "local", "none")


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _check_entities(names: Sequence[str]) -> None:
    unknown = [n for n in names if n not in KNOWN_ENTITIES]
    if unknown:
        raise ValueError(
            f"unknown entity {', '.join(unknown)}; known: {', '.join(sorted(KNOWN_ENTITIES))}"
        )


class PiiPolicy(_Model):
    """What personal data to look for and what to do with it before a prompt leaves."""

    entities: tuple[str, ...] = DEFAULT_ENTITIES
    action: PiiAction = "pseudonymize"
    per_entity: dict[str, PiiAction] = Field(default_factory=dict)
    min_score: float = Field(default=0.5, ge=0.0, le=1.0)
    allow: tuple[str, ...] = ()
    restore_output: bool = True
    model: str = "auto"
    """spaCy model package for names and places: ``auto`` picks the best installed English one."""
    embeddings: EmbeddingsPiiAction = "mask"
    """What PII becomes in texts sent to ``/v1/embeddings``: every entity the policy would
    pseudonymise or mask gets this action there (entities it allows or blocks keep that).
    ``mask`` (``[PERSON]``) means the same in every request, so vectors of different texts
    stay comparable; ``pseudonymize`` numbers values per request (``<PERSON_1>``), which
    tells entities within one text apart but means nothing across texts; ``block`` refuses."""

    profile: Literal["accurate", "fast"] = "accurate"
    """``fast``: patterns and checksums only, no NER — names and places are not detected."""

    @field_validator("embeddings", mode="before")
    @classmethod
    def _british_spelling(cls, v: Any) -> Any:
        return "pseudonymize" if v == "pseudonymise" else v

    @field_validator("entities")
    @classmethod
    def _known_entities(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        _check_entities(v)
        return v

    @field_validator("per_entity")
    @classmethod
    def _known_per_entity(cls, v: dict[str, PiiAction]) -> dict[str, PiiAction]:
        _check_entities(list(v))
        return v

    def action_for(self, entity: str, api: str | None = None) -> PiiAction:
        """What happens to ``entity``; ``api="embeddings"`` applies :attr:`embeddings`."""
        action = self.per_entity.get(entity, self.action)
        if api == "embeddings" and action in ("pseudonymize", "mask"):
            return self.embeddings
        return action

    @property
    def detected_entities(self) -> tuple[str, ...]:
        """Entities worth running detection for (``per_entity`` may add some)."""
        extra = [e for e in self.per_entity if e not in self.entities]
        return tuple(e for e in (*self.entities, *extra) if self.action_for(e) != "allow"
                     and not (self.profile == "fast" and e in NER_BACKED))


class CircuitBreakerPolicy(_Model):
    """When to stop calling a failing moderation endpoint, and when to try it again."""

    enabled: bool = True
    failures: int = Field(default=5, ge=1, le=1000)
    """Consecutive outage failures (timeout, refused, 5xx, 429, bad answer) that open it."""
    cooldown_s: float = Field(default=30.0, gt=0, le=3600)
    """How long it stays open before one probe request may try the endpoint again."""


class ModerationCheck(_Model):
    """One moderation check (on the input or on the output)."""

    provider: str = "openai"
    model: str = "omni-moderation-latest"
    base_url: str | None = None
    """Defaults to the upstream's base URL."""
    thresholds: dict[str, float] = Field(default_factory=lambda: {"default": 0.5})
    on_error: Literal["block", "allow", "local"] = "block"
    """``local``: when the provider fails, check with the offline ``local`` model instead."""
    timeout_s: float = Field(default=2.0, gt=0, le=60)
    circuit_breaker: CircuitBreakerPolicy = Field(default_factory=CircuitBreakerPolicy)
    """Applies to remote providers (``openai``); local ones do not fail that way."""

    @field_validator("provider")
    @classmethod
    def _known_provider(cls, v: str) -> str:
        if v not in MODERATION_PROVIDERS:
            raise ValueError(f"unknown provider {v!r}; known: {', '.join(MODERATION_PROVIDERS)}")
        return v

    @field_validator("thresholds")
    @classmethod
    def _known_categories(cls, v: dict[str, float]) -> dict[str, float]:
        unknown = [k for k in v if k != "default" and k not in MODERATION_CATEGORIES]
        if unknown:
            raise ValueError(
                f"unknown category {', '.join(unknown)}; known: default, "
                + ", ".join(MODERATION_CATEGORIES)
            )
        bad = [k for k, t in v.items() if not 0.0 <= t <= 1.0]
        if bad:
            raise ValueError(f"thresholds must be between 0 and 1 ({', '.join(bad)})")
        return v


class ModerationPolicy(_Model):
    input: ModerationCheck | None = Field(default_factory=ModerationCheck)
    output: ModerationCheck | None = None


class RuleCondition(_Model):
    """Exactly one condition per rule."""

    regex: str | None = None
    keywords: tuple[str, ...] | None = None
    case_sensitive: bool = False
    pii: tuple[str, ...] | None = None
    max_chars: int | None = Field(default=None, gt=0)
    moderation: bool | tuple[str, ...] | None = None
    """``true`` for any flagged category, or a list of categories."""

    @model_validator(mode="after")
    def _exactly_one(self) -> RuleCondition:
        given = [k for k in ("regex", "keywords", "pii", "max_chars", "moderation")
                 if getattr(self, k) not in (None, False)]
        if len(given) != 1:
            raise ValueError(
                "a rule needs exactly one condition of regex, keywords, pii, max_chars, "
                f"moderation (got {', '.join(given) or 'none'})"
            )
        return self

    @field_validator("regex")
    @classmethod
    def _compiles(cls, v: str | None) -> str | None:
        if v is not None:
            try:
                re.compile(v)
            except re.error as exc:
                raise ValueError(f"invalid regular expression: {exc}") from None
        return v

    @field_validator("pii")
    @classmethod
    def _known_pii(cls, v: tuple[str, ...] | None) -> tuple[str, ...] | None:
        if v is not None:
            _check_entities(v)
        return v

    @field_validator("moderation")
    @classmethod
    def _known_moderation(cls, v: bool | tuple[str, ...] | None) -> bool | tuple[str, ...] | None:
        if isinstance(v, tuple):
            unknown = [c for c in v if c not in MODERATION_CATEGORIES]
            if unknown:
                raise ValueError(
                    f"unknown category {', '.join(unknown)}; known: "
                    + ", ".join(MODERATION_CATEGORIES)
                )
        return v

    @property
    def kind(self) -> str:
        for k in ("regex", "keywords", "pii", "max_chars", "moderation"):
            if getattr(self, k) not in (None, False):
                return k
        raise AssertionError("validated rule without a condition")


class OutputRule(_Model):
    id: str = Field(pattern=r"^[a-z0-9][a-z0-9_.-]*$")
    when: RuleCondition
    action: RuleAction
    message: str | None = None


class PromptInjectionCondition(_Model):
    """Fires when the prompt-injection score of a checked text reaches ``threshold``."""

    threshold: float = Field(default=0.5, ge=0.0, le=1.0)
    roles: tuple[Literal["user", "tool", "system", "developer", "assistant"], ...] = ("user", "tool")
    """Whose messages are checked; by default what users and tools wrote, not the app's own
    system prompt."""

    @field_validator("roles")
    @classmethod
    def _some_role(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        if not v:
            raise ValueError("name at least one role (user, tool, system, developer, assistant)")
        return v


class InputCondition(_Model):
    """Exactly one condition per input rule (today the only kind is ``prompt_injection``)."""

    prompt_injection: PromptInjectionCondition | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> InputCondition:
        if self.prompt_injection is None:
            raise ValueError("an input rule needs exactly one condition of prompt_injection "
                             "(got none)")
        return self

    @property
    def kind(self) -> str:
        return "prompt_injection"


class InputRule(_Model):
    """A check on the request's redacted text, after PII and before moderation."""

    id: str = Field(pattern=r"^[a-z0-9][a-z0-9_.-]*$")
    when: InputCondition
    action: Literal["block", "warn"]
    message: str | None = None
    """What a blocked client is told (a default names the rule)."""


class InputPolicy(_Model):
    rules: tuple[InputRule, ...] = ()

    @field_validator("rules")
    @classmethod
    def _unique_ids(cls, v: tuple[InputRule, ...]) -> tuple[InputRule, ...]:
        seen: set[str] = set()
        for rule in v:
            if rule.id in seen:
                raise ValueError(f"duplicate rule id {rule.id!r}")
            seen.add(rule.id)
        return v


class StreamingPolicy(_Model):
    window_chars: int = Field(default=160, ge=16, le=16384)
    overlap_chars: int = Field(default=48, ge=0)

    @model_validator(mode="after")
    def _overlap_below_window(self) -> StreamingPolicy:
        if self.overlap_chars >= self.window_chars:
            raise ValueError("overlap_chars must be smaller than window_chars")
        return self


class OutputPolicy(_Model):
    streaming: StreamingPolicy = Field(default_factory=StreamingPolicy)
    rules: tuple[OutputRule, ...] = ()
    block_message: str = "The answer was withheld by policy."

    @field_validator("rules")
    @classmethod
    def _unique_ids(cls, v: tuple[OutputRule, ...]) -> tuple[OutputRule, ...]:
        seen: set[str] = set()
        for rule in v:
            if rule.id in seen:
                raise ValueError(f"duplicate rule id {rule.id!r}")
            seen.add(rule.id)
        return v


class ImagesPolicy(_Model):
    """What happens to images in a request (``image_url`` / ``input_image`` parts).

    ``moderate`` (the default) sends them to the input moderation with the texts (the
    categories the model cannot judge for images are recorded as unevaluated); ``allow``
    lets them through unmoderated; ``block`` refuses requests that carry any. A data URL
    longer than ``max_data_url_bytes`` is refused (400, ``guard.image_too_large``).
    ``images: block`` is short for ``images: {action: block}``.
    """

    action: ImagesAction = "moderate"
    max_data_url_bytes: int = Field(default=DEFAULT_MAX_IMAGE_BYTES, gt=0)


class AuditPolicy(_Model):
    sink: str | None = None
    """``sqlite:///guard-audit.db`` (default), ``jsonl:///path``, ``stdout``."""


class Policy(_Model):
    """A whole policy file. Build one with :func:`load_policy`.

    >>> policy = load_policy("policies/default.yaml")  # doctest: +SKIP
    >>> policy.pii.action
    'pseudonymize'
    """

    version: Literal[1] = 1
    name: str = Field(min_length=1, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
    description: str = ""
    mode: Literal["enforce", "monitor"] = "enforce"
    pii: PiiPolicy = Field(default_factory=PiiPolicy)
    moderation: ModerationPolicy = Field(default_factory=ModerationPolicy)
    input: InputPolicy = Field(default_factory=InputPolicy)
    output: OutputPolicy = Field(default_factory=OutputPolicy)
    images: ImagesPolicy = Field(default_factory=ImagesPolicy)
    audit: AuditPolicy = Field(default_factory=AuditPolicy)

    # Not part of the YAML: where it came from and the hash of its exact bytes.
    source: str = Field(default="<memory>", exclude=True)
    sha256: str = Field(default="", exclude=True)

    @field_validator("images", mode="before")
    @classmethod
    def _images_shorthand(cls, v: Any) -> Any:
        return {"action": v} if isinstance(v, str) else v


def packaged_policies_dir() -> Path:
    """The policy packs installed with Guard (``default``, ``healthcare``, ``payments`` ...)."""
    return Path(str(resources.files("guard") / "policies"))


def resolve_policy_path(name_or_path: str | Path) -> Path:
    """A path as given, or the name of a shipped pack (``default`` → its YAML file)."""
    path = Path(name_or_path)
    if path.exists():
        return path
    packaged = packaged_policies_dir() / f"{name_or_path}.yaml"
    if isinstance(name_or_path, str) and "/" not in name_or_path and packaged.exists():
        return packaged
    known = ", ".join(sorted(p.stem for p in packaged_policies_dir().glob("*.yaml")
                             if not p.stem.endswith(".cases")))
    raise PolicyError(str(name_or_path), [f"no such file, and not a shipped policy ({known})"])


def load_policy(source: str | Path) -> Policy:
    """Read, validate and hash a policy file (or a shipped pack by name).

    Raises :class:`PolicyError` naming file, line, key path and what is allowed.
    """
    path = resolve_policy_path(source)
    raw = path.read_bytes()
    return parse_policy(raw.decode("utf-8"), source=str(path), sha256=hashlib.sha256(raw).hexdigest())


def parse_policy(text: str, *, source: str = "<memory>", sha256: str | None = None) -> Policy:
    """Validate policy YAML given as text."""
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f"{mark.line + 1}" if mark is not None else "?"
        problem = getattr(exc, "problem", None) or str(exc)
        raise PolicyError(source, [f"{source}:{line}: not valid YAML: {problem}"]) from None
    if not isinstance(data, dict):
        raise PolicyError(source, [f"{source}:1: a policy is a mapping with version, name, ..."])
    data = {**data, "source": source,
            "sha256": sha256 or hashlib.sha256(text.encode("utf-8")).hexdigest()}
    try:
        return Policy.model_validate(data)
    except ValidationError as exc:
        raise PolicyError(source, [_describe(err, node, source) for err in exc.errors()]) from None


def _describe(err: Any, root: yaml.Node | None, source: str) -> str:
    loc = tuple(err["loc"])
    path = ".".join(str(p) if not isinstance(p, int) else f"[{p}]" for p in loc).replace(".[", "[")
    line = _line_of(root, loc)
    message = err["msg"].removeprefix("Value error, ")
    if err["type"] == "extra_forbidden":
        message = f"unknown key; allowed here: {', '.join(_allowed_keys(loc[:-1]))}"
    elif err["type"] == "missing":
        message = "required key is missing"
    return f"{source}:{line}: {path or '(top level)'}: {message}"


def _line_of(root: yaml.Node | None, loc: tuple[Any, ...]) -> int:
    """The line of the deepest YAML node along ``loc`` (1-based)."""
    node = root
    best = root.start_mark.line + 1 if root is not None else 1
    for key in loc:
        if isinstance(node, yaml.MappingNode):
            match = next((v for k, v in node.value if k.value == str(key)), None)
            key_node = next((k for k, _ in node.value if k.value == str(key)), None)
            if key_node is not None:
                best = key_node.start_mark.line + 1
            node = match
        elif isinstance(node, yaml.SequenceNode) and isinstance(key, int) and key < len(node.value):
            node = node.value[key]
            best = node.start_mark.line + 1
        else:
            break
        if node is None:
            break
    return best


def _allowed_keys(loc: tuple[Any, ...]) -> list[str]:
    model: Any = Policy
    for key in loc:
        if isinstance(key, int):
            continue
        field = model.model_fields.get(str(key)) if hasattr(model, "model_fields") else None
        if field is None:
            return []
        model = _model_of(field.annotation)
        if model is None:
            return []
    hidden = {"source", "sha256"}
    return [k for k in model.model_fields if k not in hidden]


def _model_of(annotation: Any) -> Any:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in getattr(annotation, "__args__", ()):
        found = _model_of(arg)
        if found is not None:
            return found
    return None
