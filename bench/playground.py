"""Serving the bundled model: time to first token cold vs warm, tokens/s, and a bounded
loopback load test of the OpenAI-compatible API.

1. The worker's engine path in this process (ModelCache + TokenStream, as
   playground/jobs/answer.py runs it): cold (the base loaded from disk) vs warm (the
   base kept loaded) time to first token, and the same with a run's adapter switched on.
2. The whole path with real processes (the official openai client -> daphne -> Redis ->
   a Dramatiq worker -> back): the first request (cold worker) vs warm ones.
3. ``--clients`` (8) concurrent streamed openai clients, one request each, loopback only:
   p50/p95 time to first token, total tokens/s, and whether every request ended.

    python bench/playground.py [--tokens 32] [--warm 5] [--clients 8] [--skip-lab]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("SLMLAB_MODEL_STORE", "/tmp/slmlab-bench")

TARGET_WARM_TTFT_S = 0.5
MESSAGES = [{"role": "user", "content": "Give me three tips for staying focused."}]


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


def timed_stream(model, tokenizer, max_tokens: int) -> tuple[float, float, int]:
    """(time to first token, total time, tokens) for one greedy answer."""
    from training.engine.inference.chat import encode_prompt
    from training.engine.inference.cores import use_free_cores
    from training.engine.inference.stream import Sampling, TokenStream

    began = time.perf_counter()
    use_free_cores()  # as the worker does
    inputs = dict(encode_prompt(tokenizer, MESSAGES))
    stream = TokenStream(model, tokenizer, inputs, Sampling(max_new_tokens=max_tokens))
    first = None
    for _ in stream:
        first = first or time.perf_counter() - began
    return first or 0.0, time.perf_counter() - began, stream.completion_tokens


def engine(args: argparse.Namespace, model_dir: Path) -> None:
    from tests.playground.adapters import write_random_adapter
    from training.engine.inference.cache import ModelCache

    adapter = write_random_adapter(model_dir, Path(tempfile.mkdtemp()) / "adapter")
    cache = ModelCache(budget_bytes=4 * 1024**3, device="cpu")
    print("engine (ModelCache + TokenStream, in this process):")
    rows = {}
    for name, adapter_dir in (("base", None), ("adapter", adapter)):
        began = time.perf_counter()
        with cache.lease(model_dir, adapter_dir) as (model, tokenizer):
            first, _total, _ = timed_stream(model, tokenizer, args.tokens)
        cold = time.perf_counter() - began - (_total - first)
        warm, rates = [], []
        for _ in range(args.warm):
            with cache.lease(model_dir, adapter_dir) as (model, tokenizer):
                first, total, tokens = timed_stream(model, tokenizer, args.tokens)
            warm.append(first)
            rates.append(tokens / total)
        rows[name] = (cold, statistics.median(warm), statistics.median(rates))
        cold_label = "cold (load base)" if name == "base" else "first (load adapter)"
        print(
            f"  {name:>7}: TTFT {cold_label} {cold:6.2f} s, warm {rows[name][1]:.3f} s "
            f"(cold/warm {cold / rows[name][1]:.0f}x; target {TARGET_WARM_TTFT_S} s: "
            f"{rows[name][1] / TARGET_WARM_TTFT_S:.2f} of it); {rows[name][2]:.1f} tokens/s"
        )
    print(f"  bases loaded from disk: {cache.loads} (the adapter rides on the loaded base)")


def stream_once(api, model: str, max_tokens: int, began: float | None = None) -> dict:
    began = time.perf_counter() if began is None else began
    stream = api.chat.completions.create(
        model=model,
        messages=MESSAGES,
        max_tokens=max_tokens,
        temperature=0,
        stream=True,
        stream_options={"include_usage": True},
    )
    first, finish, usage = None, None, None
    for chunk in stream:
        if chunk.choices and chunk.choices[0].delta.content and first is None:
            first = time.perf_counter() - began
        if chunk.choices and chunk.choices[0].finish_reason:
            finish = chunk.choices[0].finish_reason
        usage = chunk.usage or usage
    total = time.perf_counter() - began
    return {"ttft": first, "total": total, "finish": finish, "tokens": usage.completion_tokens}


def whole_path(args: argparse.Namespace) -> None:
    import openai

    from tests.playground.servinglab import ServingLab

    with tempfile.TemporaryDirectory(prefix="slmlab-bench-serve-") as data_dir:
        lab = ServingLab(Path(data_dir), worker_threads=2)
        try:
            api = openai.OpenAI(
                api_key=lab.key, base_url=lab.url + "/v1", max_retries=0, timeout=600
            )
            print("whole path (openai client -> daphne -> Redis -> worker), streamed:")
            for model in (lab.base_name, lab.run_model):
                cold = stream_once(api, model, args.tokens)
                warm = [stream_once(api, model, args.tokens) for _ in range(args.warm)]
                ttft = statistics.median(w["ttft"] for w in warm)
                rate = statistics.median(w["tokens"] / w["total"] for w in warm)
                print(
                    f"  {model:>22}: TTFT first {cold['ttft']:6.2f} s, warm {ttft:.3f} s "
                    f"(first/warm {cold['ttft'] / ttft:.0f}x; target {TARGET_WARM_TTFT_S} s: "
                    f"{ttft / TARGET_WARM_TTFT_S:.2f} of it); {rate:.1f} tokens/s"
                )
            load_test(api, lab.run_model, args)
        finally:
            lab.close()


def load_test(api, model: str, args: argparse.Namespace) -> None:
    results: list[dict | BaseException] = [None] * args.clients  # type: ignore[list-item]
    gate = threading.Barrier(args.clients)

    def client(i: int) -> None:
        gate.wait()
        try:
            results[i] = stream_once(api, model, args.tokens)
        except BaseException as exc:
            results[i] = exc

    threads = [threading.Thread(target=client, args=(i,)) for i in range(args.clients)]
    began = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    wall = time.perf_counter() - began
    done = [r for r in results if isinstance(r, dict) and r["finish"] in ("stop", "length")]
    ttfts = [r["ttft"] for r in done]
    tokens = sum(r["tokens"] for r in done)
    print(f"load test: {args.clients} concurrent streamed clients, {args.tokens} tokens each:")
    if ttfts:
        print(
            f"  TTFT p50 {percentile(ttfts, 0.5):.2f} s, p95 {percentile(ttfts, 0.95):.2f} s; "
            f"total {tokens / wall:.1f} tokens/s ({tokens} tokens in {wall:.1f} s)"
        )
    lost = args.clients - len(done)
    print(f"  requests ended: {len(done)}/{args.clients}; lost: {lost}")
    for result in results:
        if not (isinstance(result, dict) and result in done):
            print(f"  failed: {result!r}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tokens", type=int, default=32, help="new tokens per answer")
    parser.add_argument("--warm", type=int, default=5, help="warm requests measured")
    parser.add_argument("--clients", type=int, default=8, help="concurrent clients")
    parser.add_argument("--skip-lab", action="store_true", help="only the engine part")
    args = parser.parse_args()

    from training.engine.models import store

    model_dir = store.import_bundled_model(Path(os.environ["SLMLAB_MODEL_STORE"]))
    engine(args, model_dir)
    if not args.skip_lab:
        whole_path(args)


if __name__ == "__main__":
    main()
