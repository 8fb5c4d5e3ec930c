"""In-process engine: transformers + peft, for accelerators whose vLLM cannot serve LoRA.

One worker thread owns the model. Requests queue up; the worker takes up to `max_batch` of them (waiting at most
`batch_wait_ms` for company), groups them by sampling settings, and generates each group as one left-padded batch
in which every row may use a different adapter (peft's mixed-adapter batches, `adapter_names=`). Tokens stream out
per row through a streamer; rows stop on their own max_tokens, EOS or stop strings.
"""

from __future__ import annotations

import asyncio
import queue
import threading
import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

from domainlm import log
from domainlm.kernels.dtypes import resolve_dtype
from domainlm.serving.engines.base import Adapter, EngineUnavailable, UpstreamError
from domainlm.serving.protocol import (AssistantMessage, ChatChoice, ChatChunkChoice, ChatCompletion,
                                       ChatCompletionChunk, ChatDelta, Completion, CompletionChoice, Usage,
                                       openai_dict)

logger = log.get("serving.hf")
BASE = "__base__"  # peft's name for "no adapter" in a mixed batch


@dataclass(eq=False)
class Row:
    prompt_ids: list[int]
    max_tokens: int
    stop: list[str]
    adapter: str
    index: int                       # choice index within its job
    job: Job
    tokens: list[int] = field(default_factory=list)
    text: str = ""
    sent: int = 0                    # characters already streamed
    finish: str | None = None


@dataclass(eq=False)
class Job:
    kind: str                        # chat | completions
    model: str
    sampling: tuple                  # (do_sample, temperature, top_p, seed): rows batch together only if equal
    stream: bool
    loop: asyncio.AbstractEventLoop
    events: asyncio.Queue            # (index, delta, finish) per row, then None when the job is done
    rows: list[Row] = field(default_factory=list)
    call: Callable | None = None     # control jobs (load/unload adapters) run in the worker thread
    cancelled: bool = False


class HfEngine:
    def __init__(self, *, base_name: str, model_path: str, settings, retry_after_s: float = 5.0):
        self.base_name = base_name
        self.model_path = model_path
        self.settings = settings                     # serving.config.HfSection
        self.max_model_len = settings.max_model_len
        self.retry_after_s = retry_after_s
        self.model = None
        self.tokenizer = None
        self.adapters: dict[str, Adapter] = {}
        self._queue: queue.Queue[Job | None] = queue.Queue()
        self._thread: threading.Thread | None = None
        self._ready = False
        self._error = ""
        self.stats = {"batches": 0, "rows": 0, "max_rows": 0}  # generate() calls and rows in them

    # --- lifecycle -----------------------------------------------------------------------------------------------
    async def start(self, adapters: list[Adapter]) -> None:
        await asyncio.to_thread(self._load, adapters)
        self._thread = threading.Thread(target=self._worker, name=f"hf-engine-{self.base_name}", daemon=True)
        self._thread.start()
        self._ready = True

    def _load(self, adapters: list[Adapter]) -> None:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self.tokenizer = AutoTokenizer.from_pretrained(self.model_path)
        self.tokenizer.padding_side = "left"
        if self.tokenizer.pad_token_id is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        dtype = getattr(torch, resolve_dtype(self.settings.dtype, "cpu"))   # this engine runs on the CPU
        model = AutoModelForCausalLM.from_pretrained(self.model_path, dtype=dtype)
        model.eval()
        self.model = model
        for adapter in adapters:
            self._attach(adapter)

    def _attach(self, adapter: Adapter) -> None:
        from peft import PeftModel

        if not hasattr(self.model, "peft_config"):
            self.model = PeftModel.from_pretrained(self.model, str(adapter.path), adapter_name=adapter.name)
        else:
            self.model.load_adapter(str(adapter.path), adapter_name=adapter.name)
        self.model.eval()
        self.adapters[adapter.name] = adapter

    def _detach(self, name: str) -> None:
        if name in self.adapters and hasattr(self.model, "delete_adapter"):
            self.model.delete_adapter(name)
        self.adapters.pop(name, None)

    async def stop(self) -> None:
        self._ready = False
        if self._thread:
            self._queue.put(None)
            await asyncio.to_thread(self._thread.join, 30)

    async def wait_ready(self, timeout: float) -> bool:
        return self._ready

    def ready(self) -> bool:
        return self._ready and self._thread is not None and self._thread.is_alive()

    def loaded(self) -> set[str]:
        return set(self.adapters)

    def status(self) -> dict:
        return {"kind": "hf", "base": self.base_name, "ready": self.ready(), "adapters": sorted(self.adapters),
                "queued": self._queue.qsize(), "last_error": self._error, **self.stats}

    # --- adapters (run in the worker thread, between batches) --------------------------------------------------
    async def _control(self, fn: Callable) -> None:
        loop = asyncio.get_running_loop()
        done: asyncio.Future = loop.create_future()

        def call():
            try:
                fn()
                loop.call_soon_threadsafe(done.set_result, None)
            except Exception as exc:  # noqa: BLE001 - handed back to the awaiting coroutine
                loop.call_soon_threadsafe(done.set_exception, exc)

        self._queue.put(Job("control", "", (), False, loop, asyncio.Queue(), call=call))
        await done

    async def load_adapter(self, adapter: Adapter) -> None:
        await self._control(lambda: (self._detach(adapter.name), self._attach(adapter)))

    async def unload_adapter(self, name: str) -> None:
        await self._control(lambda: self._detach(name))

    # --- requests ------------------------------------------------------------------------------------------------
    def _prompt_ids(self, kind: str, body: dict) -> list[list[int]]:
        if kind == "chat":
            ids = self.tokenizer.apply_chat_template(body["messages"], add_generation_prompt=True, tokenize=True)
            if hasattr(ids, "keys"):
                ids = ids["input_ids"]
            return [list(ids)]
        prompts = body["prompt"] if isinstance(body["prompt"], list) else [body["prompt"]]
        return [self.tokenizer(p, add_special_tokens=False)["input_ids"] for p in prompts]

    def _job(self, kind: str, body: dict, stream: bool) -> Job:
        if not self.ready():
            raise EngineUnavailable(f"hf engine for '{self.base_name}' is not running", self.retry_after_s)
        if body.get("logprobs") or body.get("echo"):
            raise UpstreamError(400, {"error": {"message": "logprobs and echo are not supported by the hf engine",
                                                "type": "invalid_request_error", "param": "logprobs",
                                                "code": "unsupported"}})
        model = body["model"]
        adapter = BASE if model == self.base_name else model
        if adapter != BASE and adapter not in self.adapters:
            raise UpstreamError(404, {"error": {"message": f"model '{model}' is not loaded on this engine",
                                                "type": "not_found_error", "param": "model",
                                                "code": "model_not_found"}})
        temperature = body.get("temperature")
        temperature = 1.0 if temperature is None else float(temperature)
        top_p = float(body.get("top_p") or 1.0)
        do_sample = temperature > 0
        sampling = (do_sample, temperature if do_sample else 0.0, top_p if do_sample else 1.0, body.get("seed"))
        stop = body.get("stop") or []
        stop = [stop] if isinstance(stop, str) else list(stop)
        max_tokens = body.get("max_tokens") or body.get("max_completion_tokens") or 16
        job = Job(kind, model, sampling, stream, asyncio.get_running_loop(), asyncio.Queue())
        for prompt_ids in self._prompt_ids(kind, body):
            if len(prompt_ids) + max_tokens > self.max_model_len:
                raise UpstreamError(400, {"error": {
                    "message": f"prompt ({len(prompt_ids)} tokens) + max_tokens ({max_tokens}) exceeds the context "
                               f"length {self.max_model_len}", "type": "invalid_request_error",
                    "param": "max_tokens", "code": "context_length_exceeded"}})
            for _ in range(int(body.get("n") or 1)):
                job.rows.append(Row(prompt_ids, max_tokens, stop, adapter, len(job.rows), job))
        return job

    async def request(self, route: str, body: dict) -> dict:
        job = self._job(route, body, stream=False)
        self._queue.put(job)
        pending = len(job.rows)
        while pending:
            item = await job.events.get()
            if isinstance(item, Exception):
                raise item
            if item[2] is not None:
                pending -= 1
        return _response(job)

    async def stream(self, route: str, body: dict) -> AsyncIterator[bytes]:
        import json

        job = self._job(route, body, stream=True)
        self._queue.put(job)
        pending = len(job.rows)
        rid, created = f"{'chatcmpl' if route == 'chat' else 'cmpl'}-{uuid.uuid4().hex[:24]}", int(time.time())
        try:
            if route == "chat":
                for row in job.rows:
                    yield json.dumps(_chunk(job, rid, created, row.index, "", None, first=True)).encode()
            while pending:
                item = await job.events.get()
                if isinstance(item, Exception):
                    raise item
                index, delta, finish = item
                if finish is not None:
                    pending -= 1
                if delta or finish:
                    yield json.dumps(_chunk(job, rid, created, index, delta, finish)).encode()
            if (body.get("stream_options") or {}).get("include_usage"):
                yield json.dumps(_usage_chunk(job, rid, created)).encode()
        finally:
            job.cancelled = True

    # --- the worker thread ---------------------------------------------------------------------------------------
    def _worker(self) -> None:
        while True:
            first = self._queue.get()
            if first is None:
                return
            if first.call:
                first.call()
                continue
            batch, deadline = [first], time.monotonic() + self.settings.batch_wait_ms / 1000
            while sum(len(j.rows) for j in batch) < self.settings.max_batch:
                try:
                    nxt = self._queue.get(timeout=max(0.0, deadline - time.monotonic()))
                except queue.Empty:
                    break
                if nxt is None or nxt.call:
                    self._queue.put(nxt)  # handled after this batch
                    break
                batch.append(nxt)
            groups: dict[tuple, list[Row]] = {}
            for job in batch:
                if not job.cancelled:
                    groups.setdefault(job.sampling, []).extend(job.rows)
            for sampling, rows in groups.items():
                try:
                    self._generate(rows, sampling)
                except Exception as exc:  # noqa: BLE001 - reported to every waiting request, engine keeps running
                    self._error = repr(exc)
                    logger.error("hf generation failed", error=repr(exc))
                    for job in {r.job for r in rows}:
                        job.loop.call_soon_threadsafe(job.events.put_nowait, UpstreamError(
                            502, {"error": {"message": f"generation failed: {exc}", "type": "upstream_error",
                                            "param": None, "code": None}}))

    def _generate(self, rows: list[Row], sampling: tuple) -> None:
        import torch
        from transformers import StoppingCriteria, StoppingCriteriaList

        do_sample, temperature, top_p, seed = sampling
        self.stats["batches"] += 1
        self.stats["rows"] += len(rows)
        self.stats["max_rows"] = max(self.stats["max_rows"], len(rows))
        width = max(len(r.prompt_ids) for r in rows)
        pad = self.tokenizer.pad_token_id
        input_ids = torch.tensor([[pad] * (width - len(r.prompt_ids)) + r.prompt_ids for r in rows])
        attention = torch.tensor([[0] * (width - len(r.prompt_ids)) + [1] * len(r.prompt_ids) for r in rows])
        eos = set(_as_list(self.model.generation_config.eos_token_id)) | {self.tokenizer.eos_token_id}
        engine = self

        class RowStreamer:
            """Receives each step's tokens (batch,) and routes them to their rows."""
            def __init__(self):
                self.prompt_seen = False

            def put(self, value):
                if not self.prompt_seen:
                    self.prompt_seen = True
                    return
                for row, token in zip(rows, value.view(-1).tolist(), strict=True):
                    engine._advance(row, token, eos)

            def end(self):
                for row in rows:
                    if row.finish is None:
                        engine._finish(row, "length")

        class AllRowsDone(StoppingCriteria):
            def __call__(self, input_ids, scores, **kwargs):
                return torch.tensor([r.finish is not None or r.job.cancelled for r in rows])

        kwargs = {}
        if hasattr(self.model, "peft_config"):
            kwargs["adapter_names"] = [r.adapter for r in rows]
        if do_sample:
            kwargs.update(temperature=temperature, top_p=top_p)
            if seed is not None:
                torch.manual_seed(int(seed))
        with torch.inference_mode():
            self.model.generate(input_ids=input_ids, attention_mask=attention, do_sample=do_sample,
                                max_new_tokens=max(r.max_tokens for r in rows), pad_token_id=pad,
                                streamer=RowStreamer(), stopping_criteria=StoppingCriteriaList([AllRowsDone()]),
                                **kwargs)

    def _advance(self, row: Row, token: int, eos: set[int]) -> None:
        if row.finish is not None:
            return
        if token in eos:
            self._finish(row, "stop")
            return
        row.tokens.append(token)
        row.text = self.tokenizer.decode(row.tokens, skip_special_tokens=True)
        for stop in row.stop:
            cut = row.text.find(stop)
            if cut >= 0:
                row.text = row.text[:cut]
                self._finish(row, "stop")
                return
        if len(row.tokens) >= row.max_tokens:
            self._finish(row, "length")
            return
        if row.job.stream and not row.text.endswith("\ufffd"):  # hold back half a UTF-8 character
            held = max((len(s) - 1 for s in row.stop), default=0)  # a stop string may still be forming
            upto = len(row.text) - held
            if upto > row.sent:
                self._emit(row, row.text[row.sent:upto], None)
                row.sent = upto

    def _finish(self, row: Row, reason: str) -> None:
        row.finish = reason
        delta = row.text[row.sent:] if row.job.stream else ""
        row.sent = len(row.text)
        self._emit(row, delta, reason)

    @staticmethod
    def _emit(row: Row, delta: str, finish: str | None) -> None:
        row.job.loop.call_soon_threadsafe(row.job.events.put_nowait, (row.index, delta, finish))


def _as_list(value) -> list:
    if value is None:
        return []
    return list(value) if isinstance(value, (list, tuple)) else [value]


def _usage(job: Job) -> Usage:
    prompts = {id(r.prompt_ids): len(r.prompt_ids) for r in job.rows}  # n copies share one prompt list
    prompt, completion = sum(prompts.values()), sum(len(r.tokens) for r in job.rows)
    return Usage(prompt_tokens=prompt, completion_tokens=completion, total_tokens=prompt + completion)


def _chunk(job: Job, rid: str, created: int, index: int, delta: str, finish: str | None, first: bool = False) -> dict:
    if job.kind == "chat":
        content = ChatDelta(role="assistant", content="") if first else ChatDelta(content=delta)
        return openai_dict(ChatCompletionChunk(id=rid, created=created, model=job.model, choices=[
            ChatChunkChoice(index=index, delta=content, finish_reason=finish)]))
    return openai_dict(Completion(id=rid, created=created, model=job.model, choices=[
        CompletionChoice(index=index, text=delta, finish_reason=finish)]))


def _usage_chunk(job: Job, rid: str, created: int) -> dict:
    kind = ChatCompletionChunk if job.kind == "chat" else Completion
    return openai_dict(kind(id=rid, created=created, model=job.model, choices=[], usage=_usage(job)))


def _response(job: Job) -> dict:
    created = int(time.time())
    if job.kind == "chat":
        return openai_dict(ChatCompletion(
            id=f"chatcmpl-{uuid.uuid4().hex[:24]}", created=created, model=job.model, usage=_usage(job),
            choices=[ChatChoice(index=r.index, message=AssistantMessage(content=r.text), finish_reason=r.finish)
                     for r in job.rows]))
    return openai_dict(Completion(
        id=f"cmpl-{uuid.uuid4().hex[:24]}", created=created, model=job.model, usage=_usage(job),
        choices=[CompletionChoice(index=r.index, text=r.text, finish_reason=r.finish) for r in job.rows]))
