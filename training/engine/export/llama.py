"""llama.cpp through llama-cpp-python (an optional extra: ``pip install .[gguf-verify]``).

Prompts are always tokenized with special tokens parsed (``special=True``): without it
``<|im_start|>`` becomes seven plain-text tokens, and the model answers a prompt it never
saw in training (measured: "L'Étoile, la Cité, …" instead of "Paris").
"""

from __future__ import annotations

import contextlib
import ctypes
import importlib.util
import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

CONTEXT = 1024


class LlamaCppMissing(RuntimeError):
    """llama-cpp-python is not installed on this worker."""


def available() -> bool:
    return importlib.util.find_spec("llama_cpp") is not None


def _module() -> Any:
    if not available():
        raise LlamaCppMissing(
            "llama.cpp is not installed on this worker: install the gguf-verify extra "
            "(pip install 'slmlab[gguf-verify]') to verify GGUF exports and make K-quants"
        )
    import llama_cpp

    return llama_cpp


def _threads() -> int:
    return max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else 1)


_PARAMS = threading.Lock()


@contextlib.contextmanager
def _plain_cpu_buffers(llama_cpp: Any) -> Iterator[None]:
    """Models loaded meanwhile keep their weights in plain CPU buffers, not llama.cpp's
    "extra" ones (AMX tiles, repacked layouts; the library's ``--no-repack``).

    A build made with native CPU flags on a Sapphire Rapids machine puts Q4/Q5/Q8 weights
    in AMX buffers, and where the kernel does not grant AMX to the process (this lab's
    sandbox) the first matrix product dies with SIGSEGV in ``ggml_backend_amx_mul_mat``
    (measured: every Q8_0, Q4_0, Q4_K_M and the bundled Q4_1 file; F16 was fine).
    ``Llama`` has no argument for it, so its default model parameters are wrapped while
    it is built."""
    module = llama_cpp.llama_cpp
    original = module.llama_model_default_params

    def defaults() -> Any:
        params = original()
        if hasattr(params, "use_extra_bufts"):
            params.use_extra_bufts = False
        return params

    with _PARAMS:
        module.llama_model_default_params = defaults
        try:
            yield
        finally:
            module.llama_model_default_params = original


class GgufModel:
    """A GGUF file loaded in llama.cpp on the CPU, with every position's logits kept."""

    def __init__(self, path: Path, n_ctx: int = CONTEXT) -> None:
        llama_cpp = _module()
        self.path = Path(path)
        with _plain_cpu_buffers(llama_cpp):
            self.llm = llama_cpp.Llama(
                model_path=str(path),
                n_ctx=n_ctx,
                n_batch=min(512, n_ctx),
                logits_all=True,
                n_threads=_threads(),
                n_gpu_layers=0,
                # The default F16 KV cache: with an F32 cache this build answers nonsense
                # from Q8_0 weights (measured: "L'Étoile, la Cité…" instead of "Paris").
                verbose=False,
            )
        self.eos = self.llm.token_eos()

    @property
    def metadata(self) -> dict[str, str]:
        return dict(self.llm.metadata)

    def tokenize(self, text: str) -> list[int]:
        return self.llm.tokenize(text.encode("utf-8"), add_bos=False, special=True)

    def detokenize(self, ids: list[int]) -> str:
        return self.llm.detokenize(ids).decode("utf-8", errors="replace")

    def logits(self, ids: list[int]) -> np.ndarray:
        """Next-token logits after each of ``ids`` (len(ids) rows of vocabulary size)."""
        self.llm.reset()
        self.llm.eval(ids)
        return np.array(self.llm.scores[: len(ids)], dtype=np.float32)

    def greedy(self, ids: list[int], max_new_tokens: int) -> list[int]:
        """The argmax continuation of ``ids``, ending with the EOS token if one comes."""
        self.llm.reset()
        self.llm.eval(ids)
        out: list[int] = []
        for _ in range(max_new_tokens):
            token = int(np.argmax(self.llm.scores[self.llm.n_tokens - 1]))
            out.append(token)
            if token == self.eos:
                break
            self.llm.eval([token])
        return out

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.llm.close()


def quantize(source: Path, target: Path, kind: str = "q4_k_m") -> Path:
    """``source`` (an F16 GGUF) quantized by llama.cpp's own quantizer to ``target``."""
    llama_cpp = _module()
    ftypes = {"q4_k_m": llama_cpp.LLAMA_FTYPE_MOSTLY_Q4_K_M}
    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = ftypes[kind]
    params.nthread = _threads()
    failed = llama_cpp.llama_model_quantize(
        str(source).encode(), str(target).encode(), ctypes.byref(params)
    )
    if failed or not Path(target).is_file():
        raise RuntimeError(f"llama.cpp's quantizer failed ({failed})")
    return Path(target)
