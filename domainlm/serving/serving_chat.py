"""POST /v1/chat/completions: admission, the vertical's policy on the messages, then the engine (or a refusal)."""

from __future__ import annotations

from starlette.responses import Response

from domainlm.serving.admission import PromptSize, estimate_tokens
from domainlm.serving.call import Call
from domainlm.serving.context import PromptCounter
from domainlm.serving.endpoint import Endpoint
from domainlm.serving.errors import bad_request
from domainlm.serving.policy import RequestPolicy
from domainlm.serving.protocol import ChatCompletionRequest

FORWARDED = ("temperature", "top_p", "n", "stop", "seed", "presence_penalty", "frequency_penalty", "user")


class ChatEndpoint(Endpoint):
    async def __call__(self, req: ChatCompletionRequest, call: Call) -> Response:
        service = self.service
        route = self.begin(call, req)
        if len(req.messages) > service.config.limits.max_messages:
            raise bad_request(f"at most {service.config.limits.max_messages} messages are allowed", "messages")
        messages = [{"role": m.role, "content": m.text()} for m in req.messages]
        call.prompt_text = "\n".join(f"{m['role']}: {m['content']}" for m in messages)
        call.policy, messages, refusal = RequestPolicy.for_chat(route.vertical, messages)
        counter = service.counters[route.engine.base_name]
        prompt_bytes = PromptCounter.prompt_bytes_chat(messages)
        max_tokens = await service.admission.admit(call, req, PromptSize(
            estimate=estimate_tokens(call.prompt_text), upper_bound=PromptCounter.upper_bound_chat(messages),
            lower_bound=lambda: counter.lower_bound(prompt_bytes), exact=lambda: counter.exact_chat(messages),
            param="messages"))
        if refusal is not None:
            return await service.relay.refusal(call, req, refusal, "chat")
        body = {"model": route.engine_model, "messages": messages, "max_tokens": max_tokens,
                **{k: getattr(req, k) for k in FORWARDED if getattr(req, k) is not None}}
        if req.logprobs:
            body["logprobs"] = True
            if req.top_logprobs is not None:
                body["top_logprobs"] = req.top_logprobs
        return await service.relay.dispatch(call, route, "chat", body, req)
