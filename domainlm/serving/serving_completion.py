"""POST /v1/completions: admission over every prompt of the list, the vertical's refusal rules, then the engine."""

from __future__ import annotations

from starlette.responses import Response

from domainlm.serving.admission import PromptSize, estimate_tokens
from domainlm.serving.call import Call
from domainlm.serving.context import PromptCounter
from domainlm.serving.endpoint import Endpoint
from domainlm.serving.errors import bad_request
from domainlm.serving.policy import RequestPolicy
from domainlm.serving.protocol import CompletionRequest
from domainlm.serving.serving_chat import FORWARDED


class CompletionEndpoint(Endpoint):
    async def __call__(self, req: CompletionRequest, call: Call) -> Response:
        service = self.service
        route = self.begin(call, req)
        prompts = req.prompts()
        if len(prompts) > service.config.limits.max_prompts:
            raise bad_request(f"at most {service.config.limits.max_prompts} prompts are allowed in one request",
                              "prompt")
        call.prompt_text = "\n".join(prompts)
        call.policy, refusal = RequestPolicy.for_completion(route.vertical, prompts)
        counter = service.counters[route.engine.base_name]
        longest = max(len(p.encode()) for p in prompts)
        max_tokens = await service.admission.admit(call, req, PromptSize(
            estimate=sum(estimate_tokens(p) for p in prompts), upper_bound=PromptCounter.upper_bound_text(prompts),
            lower_bound=lambda: counter.lower_bound(longest), exact=lambda: counter.exact_text(prompts),
            param="prompt", prompts=len(prompts)))
        if refusal is not None:
            return await service.relay.refusal(call, req, refusal, "completions")
        body = {"model": route.engine_model, "prompt": req.prompt, "max_tokens": max_tokens,
                **{k: getattr(req, k) for k in FORWARDED if getattr(req, k) is not None}}
        if req.echo:
            body["echo"] = True
        if req.logprobs is not None:
            body["logprobs"] = req.logprobs
        return await service.relay.dispatch(call, route, "completions", body, req)
