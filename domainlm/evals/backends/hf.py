"""transformers + peft backend: one base model in memory; each adapter merged into its own copy of the base (small
models: scores at base speed) or loaded beside it as LoRA layers switched per subject (large models: one copy).

Log-likelihoods use prefix-shared packed rows (packing.py); the LM head runs only on the scored positions
(the context's logits are never materialised: a 49k-vocabulary head costs ~20% of a 135M model's forward).
Generation is greedy, batched by similar prompt length, left-padded.
"""

from __future__ import annotations

import contextlib
from copy import deepcopy

from domainlm.kernels.dtypes import resolve_dtype
from domainlm import log
from domainlm.evals.backends.base import Encoded, cut_at_stop
from domainlm.evals.backends.packing import build_segments, layout_row, pack_rows
from domainlm.evals.prompts import GenRequest
from domainlm.evals.subjects import Subject

logger = log.get("evals.hf")
HEAD_CHUNK = 1024  # scored positions per LM-head call: 1024 × 49k vocab × 4 B ≈ 200 MB of logits at most


MERGE_MAX_PARAMS = 3e9  # auto: one merged copy per adapter while copies are this cheap (≤ 6 GB each in bf16)


def merge_adapters(setting: str, base_params: int) -> bool:
    """Evaluate each adapter as its own merged model (fast) or as LoRA layers switched on a shared base (lean)."""
    if setting != "auto":
        return setting == "on"
    return base_params <= MERGE_MAX_PARAMS


def pick_device(setting: str) -> str:
    import torch

    if setting != "auto":
        return setting
    return "cuda" if torch.cuda.is_available() else "cpu"


class HFBackend:
    name = "hf"

    def __init__(self, base, subjects: list[Subject], cfg, tokenizer, deterministic: bool = False):
        import torch
        from transformers import AutoModelForCausalLM

        self.cfg = cfg
        self.base = base
        self.tokenizer = tokenizer
        self._threads = torch.get_num_threads()
        if cfg.threads:  # process-wide in torch: restored by close()
            torch.set_num_threads(cfg.threads)
        self.device = pick_device(cfg.device)
        self.dtype_name = resolve_dtype(cfg.dtype, self.device)   # what ran: reports and cache keys record it
        self.dtype = getattr(torch, self.dtype_name)
        model = AutoModelForCausalLM.from_pretrained(base.path, dtype=self.dtype).to(self.device)
        self.adapter_names: dict[str, str] = {}
        self.merged: dict[str, object] = {}   # subject label → its own model with the adapter merged in
        adapters = [s for s in subjects if not s.is_base]
        if adapters:
            from peft import PeftModel

            merge = merge_adapters(cfg.merge_adapters, model.num_parameters())
            for index, subject in enumerate(adapters):
                if merge:   # an unmerged LoRA costs ~2x a base forward on a CPU; a merged copy costs nothing
                    copy = deepcopy(model)   # the loaded base, not a second read of its weights
                    merged = PeftModel.from_pretrained(copy, str(subject.adapter)).merge_and_unload()
                    self.merged[subject.label] = merged.eval()
                    continue
                name = f"adapter{index}"  # peft names become module keys: no dots or @ allowed there
                if index == 0:
                    model = PeftModel.from_pretrained(model, str(subject.adapter), adapter_name=name)
                else:
                    model.load_adapter(str(subject.adapter), adapter_name=name)
                self.adapter_names[subject.label] = name
        self.model = model.eval()
        self.batch_rows = cfg.batch_rows or (16 if self.device.startswith("cuda") else 1)
        # Deterministic mode gives every question its own forward pass: its scores then never depend on which
        # other items share a row or batch (bf16 sums differ in the last bits with the shapes they run in), so a
        # resumed or re-chunked run reproduces an uninterrupted one exactly. Packing across questions saves little
        # on a CPU (rows are not padded there) and is the fast path for GPUs (deterministic: false).
        self.isolated = deterministic
        if deterministic:
            self.batch_rows = 1
            if self.device.startswith("cuda"):  # measured on an H200: 300 MedMCQA questions 9.6 s vs 0.23 s packed
                logger.info("deterministic mode: one forward per question; set deterministic: false for packed "
                            "batches (~40x faster on a GPU)")
        self.tokens_scored = 0

    def identity(self, subject: Subject) -> dict:
        identity = {"backend": "hf", "dtype": self.dtype_name, "base": self.base.weights_sha256,
                    "adapter": subject.artifact_id, "max_length": self.cfg.max_length}
        if subject.label in self.merged:   # merged weights round differently from base + LoRA: cached apart
            identity["merged"] = True
        return identity

    def _active(self, subject: Subject):
        if not self.adapter_names or subject.label in self.merged:
            return contextlib.nullcontext()
        if subject.is_base:
            return self.model.disable_adapter()
        self.model.set_adapter(self.adapter_names[subject.label])
        return contextlib.nullcontext()

    def _model(self, subject: Subject):
        """The model that answers for this subject: its merged copy, else the (peft-wrapped) shared model."""
        return self.merged.get(subject.label, self.model)

    def _lm(self, subject: Subject):
        """The causal LM whose decoder and head we call (inside peft, with its LoRA layers in place)."""
        model = self._model(subject)
        return model.get_base_model() if model is self.model and self.adapter_names else model

    # --- log-likelihood -------------------------------------------------------------------------------------

    def loglikelihood(self, subject: Subject, pairs: list[Encoded]) -> list[dict]:
        import torch

        results: list[dict | None] = [None] * len(pairs)
        # a segment longer than pack_tokens (one long context + option) simply gets a row of its own
        segments = build_segments(pairs, self.cfg.pack_tokens)
        rows = [[segment] for segment in segments] if self.isolated else pack_rows(segments, self.cfg.pack_tokens)
        with self._active(subject), torch.inference_mode():
            for start in range(0, len(rows), self.batch_rows):
                self._score_batch(subject, [layout_row(r) for r in rows[start:start + self.batch_rows]], results)
        return results

    def _score_batch(self, subject: Subject, layouts, results) -> None:
        import torch

        length = max(len(lay.ids) for lay in layouts)
        pad = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else 0
        ids = torch.full((len(layouts), length), pad, dtype=torch.long)
        positions = torch.zeros((len(layouts), length), dtype=torch.long)
        mask = torch.zeros((len(layouts), 1, length, length), dtype=torch.bool)
        for b, lay in enumerate(layouts):
            n = len(lay.ids)
            ids[b, :n] = torch.tensor(lay.ids)
            positions[b, :n] = torch.tensor(lay.positions)
            for q0, q1, k0, k1, causal in lay.blocks:
                block = torch.ones((q1 - q0, k1 - k0), dtype=torch.bool)
                mask[b, 0, q0:q1, k0:k1] = block.tril() if causal else block
            # padding attends to itself only: a row with no visible key would turn into NaN inside attention
            pads = torch.arange(n, length)
            mask[b, 0, pads, pads] = True
        lm = self._lm(subject)
        hidden = lm.get_decoder()(input_ids=ids.to(self.device), position_ids=positions.to(self.device),
                                  attention_mask=mask.to(self.device)).last_hidden_state
        head = lm.get_output_embeddings()
        for b, lay in enumerate(layouts):
            if not lay.targets:
                for owner, _, _ in lay.spans:
                    results[owner] = {"logprob": 0.0, "tokens": 0, "greedy": True}
                continue
            src = torch.tensor(lay.sources, device=self.device)
            tgt = torch.tensor(lay.targets, device=self.device)
            token_lp, greedy = [], []
            for c in range(0, len(lay.sources), HEAD_CHUNK):
                logits = head(hidden[b, src[c:c + HEAD_CHUNK]]).float()
                logprobs = torch.log_softmax(logits, dim=-1)
                picked = tgt[c:c + HEAD_CHUNK]
                token_lp.append(logprobs.gather(1, picked[:, None])[:, 0])
                greedy.append(logits.argmax(dim=-1) == picked)
            token_lp = torch.cat(token_lp).cpu().tolist()
            greedy = torch.cat(greedy).cpu().tolist()
            for owner, s, e in lay.spans:
                results[owner] = {"logprob": float(sum(token_lp[s:e])), "tokens": e - s, "greedy": all(greedy[s:e])}
            self.tokens_scored += len(lay.ids)

    # --- generation -----------------------------------------------------------------------------------------

    def generate(self, subject: Subject, requests: list[GenRequest]) -> list[str]:
        import torch

        from domainlm.evals.backends.base import _encode_many

        tok = self.tokenizer
        pad = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
        # long prompts lose their head so that prompt + answer fit the window
        prompts = [ids[-max(1, self.cfg.max_length - r.max_new_tokens):]
                   for ids, r in zip(_encode_many(tok, [r.prompt for r in requests]), requests, strict=True)]
        order = sorted(range(len(requests)), key=lambda i: (requests[i].max_new_tokens, requests[i].stop,
                                                            len(prompts[i])))
        outputs: list[str] = [""] * len(requests)
        batch_size = 1 if self.isolated else self.cfg.gen_batch_size  # padding changes bf16 numerics: see __init__
        with self._active(subject), torch.inference_mode():
            batch: list[int] = []
            for i in order + [None]:
                same = batch and i is not None and (requests[i].max_new_tokens, requests[i].stop) == (
                    requests[batch[0]].max_new_tokens, requests[batch[0]].stop)
                if batch and (i is None or not same or len(batch) == batch_size):
                    self._generate_batch(subject, [prompts[j] for j in batch], requests[batch[0]], pad, outputs,
                                         batch)
                    batch = []
                if i is not None:
                    batch.append(i)
        return outputs

    def _generate_batch(self, subject: Subject, prompts, request: GenRequest, pad: int, outputs, owners) -> None:
        import torch

        width = max(len(p) for p in prompts)
        ids = torch.full((len(prompts), width), pad, dtype=torch.long)
        attention = torch.zeros((len(prompts), width), dtype=torch.long)
        for b, p in enumerate(prompts):  # left padding: every prompt ends where generation starts
            ids[b, width - len(p):] = torch.tensor(p)
            attention[b, width - len(p):] = 1
        kwargs = {"stop_strings": list(request.stop), "tokenizer": self.tokenizer} if request.stop else {}
        out = self._model(subject).generate(input_ids=ids.to(self.device), attention_mask=attention.to(self.device),
                                  max_new_tokens=request.max_new_tokens, do_sample=False, temperature=None,
                                  top_p=None, top_k=None, pad_token_id=pad, **kwargs)
        for b, owner in enumerate(owners):
            text = self.tokenizer.decode(out[b, width:], skip_special_tokens=True)
            outputs[owner] = cut_at_stop(text, request.stop).strip()
            self.tokens_scored += width + request.max_new_tokens

    def close(self) -> None:
        import torch

        self.model = None
        self.merged = {}
        torch.set_num_threads(self._threads)
