"""OpenAI-shaped request/response models for the gateway (pydantic). Only the fields listed here are forwarded.

Unknown request fields are ignored (clients send many vendor extras); listed fields are range-checked here and the
gateway's configured limits (max_tokens, n, stop) are checked by the serving class.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

Stop = str | list[str] | None


class _Request(BaseModel):
    model_config = ConfigDict(extra="ignore", protected_namespaces=())


class TextPart(_Request):
    type: Literal["text"]
    text: str


class ChatMessage(_Request):
    role: Literal["system", "developer", "user", "assistant"]
    content: str | list[TextPart] | None = None
    name: str | None = None

    def text(self) -> str:
        if self.content is None:
            return ""
        if isinstance(self.content, str):
            return self.content
        return "".join(part.text for part in self.content)


class StreamOptions(_Request):
    include_usage: bool = False


class _Sampling(_Request):
    model: str = Field(min_length=1, max_length=128)
    max_tokens: int | None = Field(None, ge=1)
    temperature: float | None = Field(None, ge=0.0, le=2.0)
    top_p: float | None = Field(None, gt=0.0, le=1.0)
    n: int = Field(1, ge=1)
    stop: Stop = None
    stream: bool = False
    stream_options: StreamOptions | None = None
    seed: int | None = Field(None, ge=0, le=2**63 - 1)
    presence_penalty: float | None = Field(None, ge=-2.0, le=2.0)
    frequency_penalty: float | None = Field(None, ge=-2.0, le=2.0)
    user: str | None = Field(None, max_length=256)

    def stop_list(self) -> list[str]:
        if self.stop is None:
            return []
        return [self.stop] if isinstance(self.stop, str) else list(self.stop)


class ChatCompletionRequest(_Sampling):
    messages: list[ChatMessage] = Field(min_length=1)
    max_completion_tokens: int | None = Field(None, ge=1)  # newer OpenAI name of max_tokens
    logprobs: bool = False
    top_logprobs: int | None = Field(None, ge=0, le=20)

    def requested_max_tokens(self) -> int | None:
        return self.max_completion_tokens or self.max_tokens


class CompletionRequest(_Sampling):
    prompt: str | list[str]
    echo: bool = False
    logprobs: int | None = Field(None, ge=0, le=20)

    @field_validator("prompt")
    @classmethod
    def _non_empty(cls, value):
        if isinstance(value, list) and not value:
            raise ValueError("prompt list is empty")
        return value

    def prompts(self) -> list[str]:
        return [self.prompt] if isinstance(self.prompt, str) else list(self.prompt)

    def requested_max_tokens(self) -> int | None:
        return self.max_tokens


# --- responses (documented in the OpenAPI schema; engines return plain dicts of this shape) ---------------------
class ErrorBody(BaseModel):
    message: str
    type: str
    param: str | None = None
    code: str | int | None = None


class ErrorResponse(BaseModel):
    error: ErrorBody


class ModelCard(BaseModel):
    id: str
    object: Literal["model"] = "model"
    created: int
    owned_by: str = "domainlm"
    parent: str | None = None       # the base model an adapter runs on
    vertical: str | None = None
    version: int | None = None
    stage: str | None = None
    artifact_id: str | None = None
    alias_of: str | None = None     # for a vertical name: the pinned version it serves now
    max_model_len: int | None = None


class ModelList(BaseModel):
    object: Literal["list"] = "list"
    data: list[ModelCard]


class Usage(BaseModel):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


class DomainlmInfo(BaseModel):
    """The gateway's own field on every answer: which adapter answered and what the vertical's policy did."""
    adapter: str
    vertical: str | None = None
    version: int | None = None
    policy: dict | None = None


class AssistantMessage(BaseModel):
    role: Literal["assistant"] = "assistant"
    content: str


class ChatChoice(BaseModel):
    index: int = 0
    message: AssistantMessage
    logprobs: dict | None = None
    finish_reason: str | None = "stop"


class _Answer(BaseModel):
    """Fields every answer object and stream chunk has (object and choices are per kind)."""
    id: str
    created: int
    model: str
    usage: Usage | None = None
    domainlm: DomainlmInfo | None = None


class ChatCompletion(_Answer):
    object: Literal["chat.completion"] = "chat.completion"
    choices: list[ChatChoice]


class ChatDelta(BaseModel):
    role: Literal["assistant"] | None = None
    content: str | None = None


class ChatChunkChoice(BaseModel):
    index: int = 0
    delta: ChatDelta
    logprobs: dict | None = None
    finish_reason: str | None = None


class ChatCompletionChunk(_Answer):
    object: Literal["chat.completion.chunk"] = "chat.completion.chunk"
    choices: list[ChatChunkChoice]


class CompletionChoice(BaseModel):
    index: int = 0
    text: str
    logprobs: dict | None = None
    finish_reason: str | None = "stop"


class Completion(_Answer):
    """A text completion, and (with stream) each of its chunks: OpenAI uses one object type for both."""
    object: Literal["text_completion"] = "text_completion"
    choices: list[CompletionChoice]


def openai_dict(model: BaseModel) -> dict:
    """A response model as OpenAI sends it: the top-level usage / domainlm fields, and a delta's role, only when
    present."""
    body = model.model_dump(mode="json")
    for optional in ("usage", "domainlm"):
        if body.get(optional) is None:
            body.pop(optional, None)
    for choice in body.get("choices", []):
        if isinstance(choice.get("delta"), dict):
            choice["delta"] = {k: v for k, v in choice["delta"].items() if v is not None}
    return body


class LoadRequest(_Request):
    model: str = Field(min_length=1, max_length=128, description="vertical@version to load, e.g. medical@3")


class PromoteRequest(_Request):
    vertical: str = Field(min_length=1, max_length=64)
    version: int = Field(ge=1)
    force: bool = False


class RollbackRequest(_Request):
    vertical: str = Field(min_length=1, max_length=64)


class SuspendRequest(_Request):
    reason: str = Field(min_length=1, max_length=500, description="why: callers see it in the 503")


class KeyCreateRequest(_Request):
    name: str = Field(min_length=1, max_length=64)
    scopes: list[str] = Field(min_length=1)
    rpm: int | None = Field(None, ge=1)
    tpm: int | None = Field(None, ge=1)


class ReviewDecision(_Request):
    note: str | None = Field(None, max_length=500, description="why (kept on the held answer and in the audit)")


class AlertmanagerAlert(_Request):
    """One alert of an Alertmanager webhook notification (payload version 4)."""
    status: Literal["firing", "resolved"]
    labels: dict[str, str] = Field(default_factory=dict)
    annotations: dict[str, str] = Field(default_factory=dict)
    startsAt: str | None = None
    endsAt: str | None = None
    fingerprint: str | None = None


class AlertmanagerWebhook(_Request):
    """Alertmanager's webhook_config body (https://prometheus.io/docs/alerting/latest/configuration/#webhook_config)."""
    version: str = "4"
    status: Literal["firing", "resolved"]
    receiver: str | None = None
    alerts: list[AlertmanagerAlert] = Field(min_length=1, max_length=1000)
