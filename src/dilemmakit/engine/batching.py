"""A batching generation engine for local models.

Conversations call `submit()` from the event loop; one worker thread owns the model. For models
with a plain full-attention KV cache (Llama, Qwen, Mistral-style, ...) it runs the continuous-batching
`Decoder`: pending requests join the running batch between decode steps and leave it when done.
Other models (sliding-window or hybrid caches) fall back to grouping pending requests with the
same sampling settings into one left-padded `generate()` call.
"""

from __future__ import annotations

import asyncio
import queue
import threading
import time
from collections import deque
from collections.abc import AsyncGenerator, Callable
from dataclasses import dataclass
from itertools import groupby

from dilemmakit.engine.decoder import (
    Decoder,
    EngineStats,
    Row,
    RowState,
    context_length,
    eos_token_ids,
    row_metas,
    supports_slot_cache,
)
from dilemmakit.engine.linear import use_skinny_linears
from dilemmakit.engine.prefix_cache import PREFIX_CACHE_MB, PrefixCache
from dilemmakit.models.base import LOCAL_SAMPLING, Delta, GenParams, Message, Reply


@dataclass
class _Request:
    messages: list[Message]
    params: GenParams
    future: asyncio.Future
    loop: asyncio.AbstractEventLoop
    on_token: Callable[[int, dict], None] | None = None


def _group_key(req: _Request):
    p = req.params
    return (p.temperature, p.top_p, p.top_k, p.min_p, p.repetition_penalty, p.max_tokens, p.seed)


class BatchingEngine:
    def __init__(
        self,
        model,
        tokenizer,
        *,
        max_batch: int = 32,
        gather_window_s: float = 0.02,
        row_state: RowState | None = None,
        prefix_cache_mb: int = PREFIX_CACHE_MB,
    ):
        self.model = model
        self.tokenizer = tokenizer
        self.row_state = row_state
        # finished conversations' keys/values, for their next turn (shared by every decoder of this engine)
        self.prefix_cache = PrefixCache(prefix_cache_mb << 20) if prefix_cache_mb > 0 else None
        self.max_batch = max(1, max_batch)
        self.gather_window_s = gather_window_s
        if tokenizer.pad_token_id is None:
            tokenizer.pad_token = tokenizer.eos_token
        self.continuous = supports_slot_cache(model)
        use_skinny_linears(model)  # decode steps: the weight-first product (same parameters, same results)
        self._queue: queue.Queue[_Request | None] = queue.Queue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._model_lock = threading.Lock()  # one forward pass at a time (worker and generate_batch)
        self.stats = EngineStats()

    @property
    def batches_run(self) -> int:
        return self.stats.batches_run

    @property
    def largest_batch(self) -> int:
        return self.stats.largest_batch

    async def submit(self, messages: list[Message], params: GenParams) -> Reply:
        self._ensure_worker()
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        self._queue.put(_Request(list(messages), params, future, loop))
        return await future

    async def stream(self, messages: list[Message], params: GenParams) -> AsyncGenerator[Delta, None]:
        """Text deltas as tokens are decoded; the last delta carries the Reply. Closing the iterator early
        cancels the request (its row leaves the batch). Engines without continuous batching send one delta."""
        if not self.continuous:
            reply = await self.submit(messages, params)
            yield Delta(reply.text, reply.meta, reply)
            return
        self._ensure_worker()
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        events: asyncio.Queue = asyncio.Queue()
        future.add_done_callback(lambda _: events.put_nowait(None))  # runs after every queued token

        def on_token(token: int, meta: dict) -> None:
            loop.call_soon_threadsafe(events.put_nowait, (token, meta))

        self._queue.put(_Request(list(messages), params, future, loop, on_token))
        ids: list[int] = []
        sent = ""
        try:
            while (event := await events.get()) is not None:
                token, meta = event
                ids.append(token)
                text = self.tokenizer.decode(ids, skip_special_tokens=True).lstrip()
                if text.endswith("\ufffd") or len(text) <= len(sent) or not text.startswith(sent):
                    continue  # an unfinished multi-byte character, or nothing new yet
                yield Delta(text[len(sent) :], dict(meta))
                sent = text
            reply = future.result()
            yield Delta(reply.text[len(sent) :] if reply.text.startswith(sent) else "", reply.meta, reply)
        finally:
            if not future.done():
                future.cancel()

    def prompt_ids(self, messages: list[Message]) -> list[int]:
        text = self.tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
        return self.tokenizer(text, add_special_tokens=False)["input_ids"]

    def generate_batch(self, conversations: list[list[Message]], params: GenParams) -> list[Reply]:
        """Synchronous batched generation (also used by benchmarks and probes)."""
        if not self.continuous:
            return self._generate_static(conversations, params)
        import torch

        results: list[Reply | BaseException | None] = [None] * len(conversations)

        def deliver_to(i: int) -> Callable[[Reply | BaseException], None]:
            def deliver(result: Reply | BaseException) -> None:
                results[i] = result

            return deliver

        todo = deque(
            Row(prompt=self.prompt_ids(m), params=params, deliver=deliver_to(i)) for i, m in enumerate(conversations)
        )
        decoder = self._decoder()
        with self._model_lock, torch.inference_mode():
            while todo or decoder.rows:
                take = [todo.popleft() for _ in range(min(len(todo), decoder.free_rows()))]
                if take:
                    decoder.admit(take)
                if decoder.rows:
                    decoder.step()
        for r in results:
            if isinstance(r, BaseException):
                raise r
        return results  # type: ignore[return-value]

    def _decoder(self) -> Decoder:
        """A decode state over this engine's model, sharing its stats and prefix cache."""
        return Decoder(
            self.model,
            self.tokenizer,
            max_batch=self.max_batch,
            row_state=self.row_state,
            stats=self.stats,
            prefix_cache=self.prefix_cache,
        )

    def close(self) -> None:
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join(timeout=30)
            self._thread = None
        if self.prefix_cache is not None:
            self.prefix_cache.clear()

    # --- worker -------------------------------------------------------------------------------
    def _ensure_worker(self) -> None:
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                target = self._work_continuous if self.continuous else self._work_grouped
                self._thread = threading.Thread(target=target, name="dilemma-batching", daemon=True)
                self._thread.start()

    def _take_pending(self, first: _Request | None, limit: int, wait: bool) -> tuple[list[_Request], bool]:
        """Up to `limit` queued requests; waits `gather_window_s` for company when `wait`."""
        pending = [first] if first is not None else []
        deadline = time.monotonic() + (self.gather_window_s if wait else 0.0)
        while len(pending) < limit:
            timeout = deadline - time.monotonic()
            try:
                item = self._queue.get(timeout=timeout) if timeout > 0 else self._queue.get_nowait()
            except queue.Empty:
                break
            if item is None:
                return pending, True
            pending.append(item)
        return pending, False

    def _work_continuous(self) -> None:
        import torch

        decoder = self._decoder()
        stopping = False
        with torch.inference_mode():
            while True:
                if not decoder.rows:
                    if stopping:
                        return
                    first = self._queue.get()
                    if first is None:
                        return
                    pending, stopping = self._take_pending(first, decoder.free_rows(), wait=True)
                elif not stopping and decoder.free_rows():
                    pending, stopping = self._take_pending(None, decoder.free_rows(), wait=False)
                else:
                    pending = []
                rows = []
                for req in pending:
                    try:
                        if not req.future.cancelled():
                            rows.append(self._row(req))
                    except Exception as exc:  # e.g. a chat template that rejects these messages
                        req.loop.call_soon_threadsafe(_set_exception, req.future, exc)
                try:
                    with self._model_lock:
                        if rows:
                            decoder.admit(rows)
                        if decoder.rows:
                            decoder.step()
                except Exception as exc:  # delivered to every waiting caller
                    for row in rows:
                        row.deliver(exc)
                    decoder.fail_all(exc)

    def _row(self, req: _Request) -> Row:
        def deliver(result: Reply | BaseException) -> None:
            if isinstance(result, BaseException):
                req.loop.call_soon_threadsafe(_set_exception, req.future, result)
            else:
                req.loop.call_soon_threadsafe(_set_result, req.future, result)

        return Row(
            prompt=self.prompt_ids(req.messages),
            params=req.params,
            deliver=deliver,
            cancelled=req.future.cancelled,
            on_token=req.on_token,
        )

    # --- fallback: grouped generate() -----------------------------------------------------------
    def _work_grouped(self) -> None:
        while True:
            first = self._queue.get()
            if first is None:
                return
            pending, stop = self._take_pending(first, self.max_batch, wait=True)
            pending.sort(key=_group_key)
            for _, group_iter in groupby(pending, key=_group_key):
                group = [r for r in group_iter if not r.future.cancelled()]
                if group:
                    self._run_group(group)
            if stop:
                return

    def _run_group(self, group: list[_Request]) -> None:
        self.stats.batches_run += 1
        self.stats.saw(len(group))
        try:
            replies = self._generate_static([r.messages for r in group], group[0].params)
        except Exception as exc:  # delivered to every waiting caller
            for r in group:
                r.loop.call_soon_threadsafe(_set_exception, r.future, exc)
            return
        for r, reply in zip(group, replies, strict=False):
            r.loop.call_soon_threadsafe(_set_result, r.future, reply)

    def _generate_static(self, conversations: list[list[Message]], params: GenParams) -> list[Reply]:
        import torch

        tok = self.tokenizer
        params = params.over(LOCAL_SAMPLING)
        budget = max(16, context_length(self.model) - params.max_tokens)
        ids = [self.prompt_ids(m)[-budget:] for m in conversations]
        width = max(len(s) for s in ids)
        pad = tok.pad_token_id
        input_ids = torch.tensor([[pad] * (width - len(s)) + s for s in ids])
        attention = torch.tensor([[0] * (width - len(s)) + [1] * len(s) for s in ids])
        device = next(self.model.parameters()).device
        do_sample = params.temperature > 0
        kwargs = dict(
            max_new_tokens=params.max_tokens,
            do_sample=do_sample,
            pad_token_id=pad,
            repetition_penalty=params.repetition_penalty,
        )
        if do_sample:
            kwargs.update(
                temperature=params.temperature, top_p=params.top_p, top_k=params.top_k or 0, min_p=params.min_p or None
            )
        else:
            kwargs.update(temperature=None, top_p=None, top_k=None)
        if params.seed is not None:
            torch.manual_seed(params.seed)
        with self._model_lock, torch.inference_mode():
            if self.row_state is not None:
                self.row_state.clear()
            out = self.model.generate(input_ids=input_ids.to(device), attention_mask=attention.to(device), **kwargs)
        eos_ids = eos_token_ids(self.model, tok)
        # A wrapped model (e.g. a harm-gated defense) may attach per-row facts such as its gate score.
        metas = row_metas(self.row_state, len(ids))
        replies = []
        for row, prompt, meta in zip(out[:, width:].tolist(), ids, metas, strict=False):
            stop = next((i for i, t in enumerate(row) if t in eos_ids), None)
            gen = row if stop is None else row[:stop]
            gen = [t for t in gen if t != pad or pad in eos_ids]
            finish = "stop" if stop is not None else "length"
            text = tok.decode(gen, skip_special_tokens=True).strip()
            replies.append(
                Reply(
                    text=text,
                    finish_reason=finish,
                    prompt_tokens=len(prompt),
                    completion_tokens=len(gen),
                    meta=dict(meta),
                )
            )
        return replies


def _set_result(future: asyncio.Future, value) -> None:
    if not future.done():
        future.set_result(value)


def _set_exception(future: asyncio.Future, exc: BaseException) -> None:
    if not future.done():
        future.set_exception(exc)
