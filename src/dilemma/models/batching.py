"""A batching generation engine for local models.

Conversations call `submit()` from the event loop; one worker thread drains the pending requests,
groups those with the same sampling settings and runs them as one left-padded `generate()` call.
With 32 conversations in flight a round of turns costs about one batched call instead of 32.
"""

from __future__ import annotations

import asyncio
import queue
import threading
import time
from dataclasses import dataclass
from itertools import groupby

from dilemma.models.base import GenParams, Message, Reply


@dataclass
class _Request:
    messages: list[Message]
    params: GenParams
    future: asyncio.Future
    loop: asyncio.AbstractEventLoop


def _group_key(req: _Request):
    p = req.params
    return (p.temperature, p.top_p, p.max_tokens, p.seed)


class BatchingEngine:
    def __init__(self, model, tokenizer, *, max_batch: int = 32, gather_window_s: float = 0.02):
        self.model = model
        self.tokenizer = tokenizer
        self.max_batch = max_batch
        self.gather_window_s = gather_window_s
        if tokenizer.pad_token_id is None:
            tokenizer.pad_token = tokenizer.eos_token
        self._queue: queue.Queue[_Request | None] = queue.Queue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self.batches_run = 0
        self.largest_batch = 0

    async def submit(self, messages: list[Message], params: GenParams) -> Reply:
        self._ensure_worker()
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        self._queue.put(_Request(list(messages), params, future, loop))
        return await future

    def generate_batch(self, conversations: list[list[Message]], params: GenParams) -> list[Reply]:
        """Synchronous batched generation (also used by benchmarks and probes)."""
        import torch

        tok = self.tokenizer
        texts = [tok.apply_chat_template(m, add_generation_prompt=True, tokenize=False) for m in conversations]
        max_ctx = int(getattr(self.model.config, "max_position_embeddings", 8192) or 8192)
        budget = max(16, max_ctx - params.max_tokens)
        enc = tok(texts, add_special_tokens=False)
        ids = [seq[-budget:] for seq in enc["input_ids"]]  # keep the most recent context
        width = max(len(s) for s in ids)
        pad = tok.pad_token_id
        input_ids = torch.tensor([[pad] * (width - len(s)) + s for s in ids])
        attention = torch.tensor([[0] * (width - len(s)) + [1] * len(s) for s in ids])
        device = next(self.model.parameters()).device
        do_sample = params.temperature > 0
        kwargs = dict(max_new_tokens=params.max_tokens, do_sample=do_sample, pad_token_id=pad)
        if do_sample:
            kwargs.update(temperature=params.temperature, top_p=params.top_p, top_k=0)
        else:
            kwargs.update(temperature=None, top_p=None, top_k=None)
        if params.seed is not None:
            torch.manual_seed(params.seed)
        with torch.inference_mode():
            out = self.model.generate(input_ids=input_ids.to(device), attention_mask=attention.to(device), **kwargs)
        eos_ids = self._eos_ids()
        replies = []
        for row, prompt in zip(out[:, width:].tolist(), ids):
            stop = next((i for i, t in enumerate(row) if t in eos_ids), None)
            gen = row if stop is None else row[:stop]
            gen = [t for t in gen if t != pad or pad in eos_ids]
            finish = "stop" if stop is not None else "length"
            text = tok.decode(gen, skip_special_tokens=True).strip()
            replies.append(Reply(text=text, finish_reason=finish, prompt_tokens=len(prompt), completion_tokens=len(gen)))
        return replies

    def _eos_ids(self) -> set[int]:
        ids: set[int] = set()
        for source in (getattr(self.model, "generation_config", None), self.model.config):
            eos = getattr(source, "eos_token_id", None)
            if isinstance(eos, int):
                ids.add(eos)
            elif eos:
                ids.update(eos)
        if self.tokenizer.eos_token_id is not None:
            ids.add(self.tokenizer.eos_token_id)
        return ids

    def close(self) -> None:
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join(timeout=30)
            self._thread = None

    def _ensure_worker(self) -> None:
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._work, name="dilemma-batching", daemon=True)
                self._thread.start()

    def _take_pending(self, first: _Request) -> tuple[list[_Request], bool]:
        pending = [first]
        deadline = time.monotonic() + self.gather_window_s
        stop = False
        while len(pending) < self.max_batch:
            timeout = deadline - time.monotonic()
            try:
                item = self._queue.get(timeout=max(0.0, timeout)) if timeout > 0 else self._queue.get_nowait()
            except queue.Empty:
                break
            if item is None:
                stop = True
                break
            pending.append(item)
        return pending, stop

    def _work(self) -> None:
        while True:
            first = self._queue.get()
            if first is None:
                return
            pending, stop = self._take_pending(first)
            pending.sort(key=_group_key)
            for _, group_iter in groupby(pending, key=_group_key):
                group = [r for r in group_iter if not r.future.cancelled()]
                if group:
                    self._run_group(group)
            if stop:
                return

    def _run_group(self, group: list[_Request]) -> None:
        self.batches_run += 1
        self.largest_batch = max(self.largest_batch, len(group))
        try:
            replies = self.generate_batch([r.messages for r in group], group[0].params)
        except Exception as exc:  # delivered to every waiting caller
            for r in group:
                r.loop.call_soon_threadsafe(_set_exception, r.future, exc)
            return
        for r, reply in zip(group, replies):
            r.loop.call_soon_threadsafe(_set_result, r.future, reply)


def _set_result(future: asyncio.Future, value) -> None:
    if not future.done():
        future.set_result(value)


def _set_exception(future: asyncio.Future, exc: BaseException) -> None:
    if not future.done():
        future.set_exception(exc)
