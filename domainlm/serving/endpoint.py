"""What every OpenAI endpoint class starts with: the gateway it serves and the request's route."""

from __future__ import annotations

from domainlm.serving.call import Call
from domainlm.serving.router import Route


class Endpoint:
    def __init__(self, service):
        self.service = service      # GatewayService: admission, relay, prompt counters, limits

    def begin(self, call: Call, req) -> Route:
        """Record the request on its call and resolve its model (404 / 403 before anything is read)."""
        call.model, call.stream = req.model, req.stream
        return self.service.admission.route(call, req.model)
