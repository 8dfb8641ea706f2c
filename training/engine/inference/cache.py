"""Keep recently used models loaded: an LRU of bases bounded by a memory budget.

A worker answers many questions for a few models. Loading a base takes seconds, so
:class:`ModelCache` keeps bases loaded, least recently used first out once their weights
together pass ``budget_bytes`` (the one in use always stays). Tuned runs are LoRA
adapters on a base: they are loaded *onto* the cached base (PEFT named adapters) and
switched per request, never as a second copy of the base. :meth:`ModelCache.lease`
holds a base's lock while a caller generates, because the active adapter is model-wide
state.
"""

from __future__ import annotations

import contextlib
import hashlib
import threading
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from training.engine.models import store
from training.engine.models.folders import check_safe_adapter_dir

# Adapters are small, but not free: at most this many stay loaded on one base.
MAX_ADAPTERS_PER_BASE = 8


def weight_bytes(model: Any) -> int:
    """Bytes held by a model's parameters and buffers."""
    tensors = list(model.parameters()) + list(model.buffers())
    return sum(t.numel() * t.element_size() for t in tensors)


def adapter_name(adapter_dir: Path | str) -> str:
    """A PEFT adapter name for a folder (module names cannot hold dots or slashes)."""
    return "a" + hashlib.sha1(str(Path(adapter_dir).resolve()).encode()).hexdigest()[:16]


@dataclass
class LoadedBase:
    """One base model in memory with the adapters loaded onto it (most recent last)."""

    model: Any
    tokenizer: Any
    size: int
    adapters: OrderedDict[str, str] = field(default_factory=OrderedDict)
    lock: threading.Lock = field(default_factory=threading.Lock)
    loads: int = 0  # adapters loaded from disk (a switch back to a loaded one is free)

    def activate(self, adapter_dir: Path | str | None) -> contextlib.AbstractContextManager:
        """Make ``adapter_dir`` the active adapter (None: the plain base) while in the
        returned context. Call with :attr:`lock` held."""
        if adapter_dir is None:
            if self.adapters:
                return self.model.disable_adapter()
            return contextlib.nullcontext()
        name = adapter_name(adapter_dir)
        if name not in self.adapters:
            self._load(Path(adapter_dir), name)
        self.adapters.move_to_end(name)
        self.model.set_adapter(name)
        return contextlib.nullcontext()

    def _load(self, adapter_dir: Path, name: str) -> None:
        from peft import PeftModel

        check_safe_adapter_dir(adapter_dir)
        if not self.adapters:
            self.model = PeftModel.from_pretrained(
                self.model, str(adapter_dir), adapter_name=name, is_trainable=False
            ).eval()
        else:
            if len(self.adapters) >= MAX_ADAPTERS_PER_BASE:
                oldest, _ = self.adapters.popitem(last=False)
                self.model.delete_adapter(oldest)
            self.model.load_adapter(str(adapter_dir), adapter_name=name, is_trainable=False)
        self.adapters[name] = str(adapter_dir)
        self.loads += 1


class ModelCache:
    """Loaded bases keyed by (folder, quantization), evicted least recently used first."""

    def __init__(self, budget_bytes: int, device: str | None = None) -> None:
        self.budget_bytes = budget_bytes
        self.device = device
        self._bases: OrderedDict[tuple[str, str], LoadedBase] = OrderedDict()
        self._lock = threading.Lock()
        self.loads = 0  # bases loaded from disk, for tests and the benchmark

    def __contains__(self, key: tuple[str, str]) -> bool:
        return key in self._bases

    @property
    def used_bytes(self) -> int:
        return sum(base.size for base in self._bases.values())

    def base(self, model_dir: Path | str, quantization: store.Quantization = "none") -> LoadedBase:
        """The loaded base for ``model_dir``, loading it (and evicting others) if needed."""
        key = (str(Path(model_dir).resolve()), quantization)
        with self._lock:
            if key in self._bases:
                self._bases.move_to_end(key)
                return self._bases[key]
            model, tokenizer = store.load_model_and_tokenizer(
                Path(model_dir), quantization=quantization, device=self.device
            )
            loaded = LoadedBase(model.eval(), tokenizer, weight_bytes(model))
            self._bases[key] = loaded
            self.loads += 1
            self._evict(keep=key)
            return loaded

    def _evict(self, keep: tuple[str, str]) -> None:
        while self.used_bytes > self.budget_bytes and len(self._bases) > 1:
            oldest = next(k for k in self._bases if k != keep)
            evicted = self._bases.pop(oldest)
            with evicted.lock:  # wait for a generation still using it
                pass

    def clear(self) -> None:
        with self._lock:
            self._bases.clear()

    @contextlib.contextmanager
    def lease(
        self,
        model_dir: Path | str,
        adapter_dir: Path | str | None = None,
        quantization: store.Quantization = "none",
    ) -> Iterator[tuple[Any, Any]]:
        """``(model, tokenizer)`` with ``adapter_dir`` active (None: the base alone),
        for this caller only until the block ends."""
        loaded = self.base(model_dir, quantization)
        with loaded.lock, loaded.activate(adapter_dir):
            yield loaded.model, loaded.tokenizer
