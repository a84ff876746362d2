"""Continuous-batching decode loop for transformers causal LMs with a plain full-attention KV cache.

Requests join the running batch between decode steps and leave it as soon as they finish, so a
campaign's conversations, which finish at different times, never wait for the slowest row.

Layout: every layer keeps its keys/values in preallocated `[rows, kv_heads, capacity, head_dim]`
buffers. Row r holds its tokens *left-aligned* in columns [0, length_r): no left padding survives
the prefill, and a decode step writes each row's new key at its own column `length_r`. The step's
attention mask (4D, additive) hides the columns past each row's end; rotary positions come from
`position_ids`, so the physical column order does not matter. The batch width is therefore always
the longest live row, and finished rows are compacted away by moving the last row into the hole.

Prompts are prefilled left-padded through the model's own `DynamicCache` exactly as `generate()`
does, then copied into the buffers without their padding.

A finished row's keys/values (prompt and reply) stay in a `PrefixCache` (`engine.prefix_cache`) for a
while, so the next turn of that conversation prefills only its new messages. Each step's tokens are drawn
by `engine.sampling`.

A model that keeps per-row state from prefill to the end of decoding (e.g. the ERR harm gate's score)
comes with a `RowState`: the decoder takes each row's state right after its prefill, keeps it with the row,
and puts the live rows' states back before every decode step, so such rows join and leave the running
batch like any other.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol, cast

import torch
from transformers.cache_utils import Cache, CacheLayerMixin, DynamicLayer

from dilemmakit.engine.prefix_cache import KV, PREFIX_MIN_TOKENS, PrefixCache
from dilemmakit.engine.sampling import sample_tokens
from dilemmakit.models.base import LOCAL_SAMPLING, GenParams, Reply

PREFILL_TOKENS = 8192  # left-padded tokens per prefill forward: bounds the activation memory


class RowState(Protocol):
    """State a model computes for each row when its prompt is prefilled and reads at every later step of that
    row (a harm gate's score). The state of a forward pass's rows lives in the model; the decoder keeps each
    row's own state with the row and puts the live rows' states back in row order before each decode step."""

    def clear(self) -> None:
        """Before a prefill: the next forward pass computes its rows' state afresh."""

    def take(self, rows: int) -> list[Any]:
        """Right after a forward pass over `rows` prompts: each row's state, in order."""

    def put(self, states: list[Any]) -> None:
        """Before a decode step: the state of each of its rows, in row order."""

    def meta(self, state: Any) -> dict:
        """What a reply reports of its row's state (it becomes `Reply.meta`)."""


def row_metas(hook: RowState | None, rows: int) -> list[dict]:
    """The meta of each row of the forward pass just run (the last prefill, or a whole `generate()`)."""
    return [hook.meta(s) for s in hook.take(rows)] if hook is not None else [{} for _ in range(rows)]


DEFAULT_CONTEXT = 4096  # tokens, for a config that declares no context length: no longer than models train on


def context_length(model_or_config) -> int:
    """Tokens a model attends over, prompt and reply together: its config's `max_position_embeddings`
    (`n_positions` in GPT-2-style configs), else DEFAULT_CONTEXT. The engine cuts a longer prompt's start."""
    config = getattr(model_or_config, "config", model_or_config)
    for name in ("max_position_embeddings", "n_positions"):
        value = getattr(config, name, None)
        if value:
            return int(value)
    return DEFAULT_CONTEXT


def cache_argument(model) -> str:
    """The keyword a model's forward takes its KV cache by: `cache` in current transformers (where the old
    `past_key_values` draws a FutureWarning), `past_key_values` in releases before the rename."""
    return "cache" if "cache" in inspect.signature(model.forward).parameters else "past_key_values"


def returned_cache(out) -> Any:
    """The KV cache a forward pass returned, read under the name its output class declares."""
    fields = getattr(type(out), "__dataclass_fields__", {})
    return out.cache if "cache" in fields else out.past_key_values


def supports_slot_cache(model) -> bool:
    """True when every layer of the model's default cache is a plain full-attention DynamicLayer."""
    try:
        from transformers.cache_utils import DynamicCache, DynamicLayer

        cache = DynamicCache(config=model.config)
    except Exception:
        return False
    n_layers = getattr(model.config.get_text_config(decoder=True), "num_hidden_layers", None)
    return (
        bool(cache.layers)
        and len(cache.layers) == n_layers
        and all(type(layer) is DynamicLayer for layer in cache.layers)
    )


def eos_token_ids(model, tokenizer) -> set[int]:
    ids: set[int] = set()
    for source in (getattr(model, "generation_config", None), model.config):
        eos = getattr(source, "eos_token_id", None)
        if isinstance(eos, int):
            ids.add(eos)
        elif eos:
            ids.update(eos)
    if tokenizer.eos_token_id is not None:
        ids.add(tokenizer.eos_token_id)
    return ids


@dataclass
class EngineStats:
    batches_run: int = 0  # prefill passes (requests admitted together)
    steps_run: int = 0  # decode steps
    largest_batch: int = 0  # most rows in one forward pass
    prompt_tokens: int = 0  # prompt tokens admitted
    cached_tokens: int = 0  # of those, tokens whose keys/values came from the prefix cache

    def saw(self, rows: int) -> None:
        self.largest_batch = max(self.largest_batch, rows)


@dataclass
class Row:
    """One request being decoded. `deliver(reply | exception)` is called exactly once."""

    prompt: list[int]
    params: GenParams
    deliver: Callable[[Reply | BaseException], None]
    cancelled: Callable[[], bool] = lambda: False
    generated: list[int] = field(default_factory=list)
    length: int = 0  # tokens in the KV cache
    meta: dict = field(default_factory=dict)
    generator: torch.Generator | None = None
    state: Any = None  # the model's per-row state (`RowState`), kept from the row's prefill to its last token
    done: bool = False
    on_token: Callable[[int, dict], None] | None = None  # streaming: each accepted token, with meta


def _filled_kv(layer: object) -> tuple[torch.Tensor, torch.Tensor]:
    """(keys, values) of a layer just prefilled. The engine runs only on caches whose layers are all
    DynamicLayers (`supports_slot_cache`), and a prefill fills every one of them."""
    kv = cast(DynamicLayer, layer)
    return cast(torch.Tensor, kv.keys), cast(torch.Tensor, kv.values)


class _SlotLayer(CacheLayerMixin):
    """One layer's view of the shared buffers, as transformers' attention layers expect it."""

    is_sliding = False
    is_compileable = False

    def __init__(self, slots: _Slots, index: int):
        super().__init__()
        self.is_initialized = True
        self.slots = slots
        self.index = index

    def lazy_initialization(self, key_states, value_states) -> None:
        pass

    def update(self, key_states, value_states, *args, **kwargs):
        s = self.slots
        keys, values = s.keys[self.index], s.values[self.index]
        keys[s.row_index, :, s.write_cols] = key_states[:, :, 0]
        values[s.row_index, :, s.write_cols] = value_states[:, :, 0]
        rows = key_states.shape[0]
        return keys[:rows, :, : s.width], values[:rows, :, : s.width]

    def get_seq_length(self) -> int:
        return self.slots.width - 1

    def get_mask_sizes(self, query_length: int, *args) -> tuple[int, int]:
        return self.slots.width - 1 + query_length, 0

    def get_max_length(self) -> int:
        return -1


class _Slots:
    """The preallocated per-layer key/value buffers, grown by doubling (rows and columns)."""

    def __init__(self):
        self.keys: list[torch.Tensor] = []
        self.values: list[torch.Tensor] = []
        self.row_index = self.write_cols = None
        self.width = 0

    @property
    def rows(self) -> int:
        return self.keys[0].shape[0] if self.keys else 0

    @property
    def capacity(self) -> int:
        return self.keys[0].shape[2] if self.keys else 0

    def ensure(self, like: list[torch.Tensor] | None, rows: int, columns: int, max_rows: int, max_columns: int) -> None:
        """Room for `rows` x `columns`; `like` (one key tensor per layer) gives shapes before the first use."""
        if self.keys and rows <= self.rows and columns <= self.capacity:
            return
        new_rows = min(max_rows, max(rows, 2 * self.rows, 4))
        new_cols = min(max_columns, max(columns, 2 * self.capacity, 256))
        for i, k in enumerate(like if like is not None else list(self.keys)):
            shape = (new_rows, k.shape[1], new_cols, k.shape[3])
            for store in (self.keys, self.values):
                fresh = torch.zeros(shape, dtype=k.dtype, device=k.device)
                if i < len(store):
                    old = store[i]
                    fresh[: old.shape[0], :, : old.shape[2]] = old
                    store[i] = fresh
                else:
                    store.append(fresh)

    def move(self, src: list[int], dst: list[int], columns: int) -> None:
        s = torch.tensor(src)
        d = torch.tensor(dst)
        for store in (self.keys, self.values):
            for buf in store:
                buf[d, :, :columns] = buf[s, :, :columns]

    def release(self) -> None:
        self.keys, self.values = [], []


class Decoder:
    """The decode state of one model: admit rows, step, collect finished rows."""

    def __init__(
        self,
        model,
        tokenizer,
        *,
        max_batch: int = 32,
        row_state: RowState | None = None,
        stats: EngineStats | None = None,
        prefix_cache: PrefixCache | None = None,
    ):
        self.model = model
        self.stats = stats or EngineStats()
        self.tokenizer = tokenizer
        self.max_batch = max_batch
        self.row_state = row_state
        # a row's keys/values above a harm gate depend on that row's own gate: not reusable by another prompt
        self.prefix_cache = prefix_cache if row_state is None else None
        self.eos = eos_token_ids(model, tokenizer)
        self.pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else next(iter(self.eos), 0)
        self.max_context = context_length(model)
        self.device = next(model.parameters()).device
        self.dtype = next(model.parameters()).dtype
        self.rows: list[Row] = []
        self.slots = _Slots()
        n_layers = model.config.get_text_config(decoder=True).num_hidden_layers
        self.cache = Cache(layers=[_SlotLayer(self.slots, i) for i in range(n_layers)])
        self._keep_logits = "logits_to_keep" in inspect.signature(model.forward).parameters
        self._cache_arg = cache_argument(model)

    # --- admission ----------------------------------------------------------------------------
    def free_rows(self) -> int:
        return self.max_batch - len(self.rows)

    def budget(self, params: GenParams) -> int:
        return max(16, self.max_context - max(1, params.max_tokens))

    def admit(self, rows: list[Row]) -> None:
        """Prefill new rows (in passes of similar lengths) and add them to the running batch."""
        rows = [r for r in rows if not r.cancelled()]
        for r in rows:
            r.params = r.params.over(LOCAL_SAMPLING)
            r.prompt = r.prompt[-self.budget(r.params) :] or [self.pad]
            if r.params.seed is not None and r.params.temperature > 0:
                r.generator = torch.Generator(device=self.device).manual_seed(int(r.params.seed))
        self.stats.prompt_tokens += sum(len(r.prompt) for r in rows)
        fresh = []
        for r in rows:
            hit = self.prefix_cache.longest(r.prompt) if self.prefix_cache is not None else None
            if hit is None:
                fresh.append(r)
            else:
                self._prefill_cached(r, *hit)
        chunks = []
        chunk: list[Row] = []
        for r in sorted(fresh, key=lambda r: len(r.prompt)):
            if chunk and (len(chunk) + 1) * len(r.prompt) > PREFILL_TOKENS:
                chunks.append(chunk)
                chunk = []
            chunk.append(r)
        if chunk:
            chunks.append(chunk)
        for chunk in chunks:
            self._prefill(chunk)

    def _prefill(self, chunk: list[Row]) -> None:
        from transformers.cache_utils import DynamicCache

        width = max(len(r.prompt) for r in chunk)
        pads = [width - len(r.prompt) for r in chunk]
        ids = torch.tensor([[self.pad] * p + r.prompt for p, r in zip(pads, chunk, strict=False)], device=self.device)
        mask = torch.tensor(
            [[0] * p + [1] * len(r.prompt) for p, r in zip(pads, chunk, strict=False)], device=self.device
        )
        positions = (mask.cumsum(-1) - 1).clamp(min=0)
        cache = DynamicCache(config=self.model.config)
        kwargs: dict[str, Any] = {"logits_to_keep": 1} if self._keep_logits else {}
        if self.row_state is not None:
            self.row_state.clear()
        kwargs[self._cache_arg] = cache
        out = self.model(input_ids=ids, attention_mask=mask, position_ids=positions, use_cache=True, **kwargs)
        self.stats.batches_run += 1
        self.stats.saw(len(chunk))
        states = self.row_state.take(len(chunk)) if self.row_state is not None else [None] * len(chunk)
        self._seat(chunk, [_filled_kv(layer) for layer in cache.layers], pads, states, out.logits[:, -1, :])

    def _prefill_cached(self, r: Row, cached: int, kv: KV) -> None:
        """Prefill one row whose first `cached` prompt tokens have keys/values in the prefix cache."""
        from transformers.cache_utils import DynamicCache

        cache = DynamicCache(config=self.model.config)
        for i, (k, v) in enumerate(kv):
            cache.update(k[None, :, :cached], v[None, :, :cached], i)
        rest = r.prompt[cached:]
        kwargs: dict[str, Any] = {"logits_to_keep": 1} if self._keep_logits else {}
        kwargs[self._cache_arg] = cache
        out = self.model(
            input_ids=torch.tensor([rest], device=self.device),
            attention_mask=torch.ones((1, len(r.prompt)), dtype=torch.long, device=self.device),
            position_ids=torch.arange(cached, len(r.prompt), device=self.device)[None, :],
            use_cache=True,
            **kwargs,
        )
        self.stats.batches_run += 1
        self.stats.cached_tokens += cached
        self._seat([r], [_filled_kv(layer) for layer in cache.layers], [0], [None], out.logits[:, -1, :])

    def _seat(self, chunk: list[Row], layers: KV, pads: list[int], states: list, logits: torch.Tensor) -> None:
        """Copy a prefilled chunk's keys/values (left-padded by `pads`) into the slots and take its first tokens."""
        width = layers[0][0].shape[2]
        start = len(self.rows)
        self.slots.ensure([k for k, _ in layers], start + len(chunk), width + 1, self.max_batch, self.max_context + 1)
        for i, (p, r) in enumerate(zip(pads, chunk, strict=False)):
            for (k, v), kb, vb in zip(layers, self.slots.keys, self.slots.values, strict=False):
                kb[start + i, :, : width - p] = k[i, :, p:]
                vb[start + i, :, : width - p] = v[i, :, p:]
            r.length = len(r.prompt)
            r.state = states[i]
            r.meta = self.row_state.meta(states[i]) if self.row_state is not None else {}
        self.rows.extend(chunk)
        self._accept(chunk, self._sample(logits, chunk))

    # --- decoding -----------------------------------------------------------------------------
    def step(self) -> None:
        """One token for every live row."""
        rows = self.rows
        n = len(rows)
        host_lengths = [r.length for r in rows]
        lengths = torch.tensor(host_lengths, device=self.device)
        width = max(host_lengths) + 1  # from the host copy: reading it back from a GPU would wait for the GPU
        self.slots.ensure(None, n, width, self.max_batch, self.max_context + 1)
        self.slots.row_index = torch.arange(n, device=self.device)
        self.slots.write_cols = lengths
        self.slots.width = width
        visible = torch.arange(width, device=self.device)[None, :] <= lengths[:, None]
        mask = torch.zeros((n, 1, 1, width), dtype=self.dtype, device=self.device)
        mask.masked_fill_(~visible[:, None, None, :], torch.finfo(self.dtype).min)
        ids = torch.tensor([[r.generated[-1] if r.generated else self.pad] for r in rows], device=self.device)
        if self.row_state is not None:
            self.row_state.put([r.state for r in rows])
        out = self.model(
            input_ids=ids,
            attention_mask=mask,
            position_ids=lengths[:, None],
            use_cache=True,
            **{self._cache_arg: self.cache},
        )
        self.stats.steps_run += 1
        self.stats.saw(n)
        for r in rows:
            r.length += 1
        self._accept(rows, self._sample(out.logits[:, -1, :], rows))

    def _sample(self, logits: torch.Tensor, rows: list[Row]) -> list[int]:
        return sample_tokens(logits, rows)

    def _accept(self, rows: list[Row], tokens: list[int]) -> None:
        for r, t in zip(rows, tokens, strict=False):
            if t in self.eos:
                self._finish(r, "stop")
                continue
            r.generated.append(t)
            if r.on_token is not None:
                r.on_token(t, r.meta)
            if len(r.generated) >= max(1, r.params.max_tokens) or r.length + 1 >= self.max_context:
                self._finish(r, "length")
            elif r.cancelled():
                self._finish(r, "cancelled")
        self._compact()
        if not self.rows:
            self.slots.release()

    def _finish(self, r: Row, reason: str) -> None:
        r.done = True
        if reason == "cancelled":
            return
        if self.prefix_cache is not None:
            self._remember(r)
        text = self.tokenizer.decode(r.generated, skip_special_tokens=True).strip()
        r.deliver(
            Reply(
                text=text,
                finish_reason=reason,
                prompt_tokens=len(r.prompt),
                completion_tokens=len(r.generated),
                meta=r.meta,
            )
        )

    def _remember(self, r: Row) -> None:
        """Keep a finished row's keys/values (its prompt and the reply tokens fed back) in the prefix cache."""
        assert self.prefix_cache is not None
        if r.length < PREFIX_MIN_TOKENS:  # the cache would refuse it: spare the copy
            return
        index = next(i for i, row in enumerate(self.rows) if row is r)
        kv = [
            (k[index, :, : r.length].clone(), v[index, :, : r.length].clone())
            for k, v in zip(self.slots.keys, self.slots.values, strict=True)
        ]
        self.prefix_cache.store(tuple((r.prompt + r.generated)[: r.length]), kv)

    def _compact(self) -> None:
        keep = [r for r in self.rows if not r.done]
        if len(keep) == len(self.rows):
            return
        holes = [i for i, r in enumerate(self.rows) if r.done and i < len(keep)]
        movers = [i for i in range(len(keep), len(self.rows)) if not self.rows[i].done]
        if holes:
            columns = max(self.rows[i].length for i in movers)
            self.slots.move(movers, holes, columns)
            for h, m in zip(holes, movers, strict=False):
                self.rows[h] = self.rows[m]
        self.rows = self.rows[: len(keep)]

    def fail_all(self, exc: BaseException) -> None:
        for r in self.rows:
            if not r.done:
                r.done = True
                r.deliver(exc)
        self.rows = []
        self.slots.release()
