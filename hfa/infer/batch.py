"""Batch inference: JSON lines in, JSON lines out, in input order, N requests at once.

Input, one request per line::

    {"id": "a1", "inputs": "I love it", "parameters": {"top_k": 2}}
    {"inputs": "No id: the line number (from 1) is the id"}
    "a bare JSON string is the inputs"

Blank lines are skipped (they still count for line numbers). Output, one line per request, in the
order of the input whatever order the requests finish in::

    {"id": "a1", "result": [...]}
    {"id": 2, "error": "…what went wrong — how to fix it"}

A line that fails (malformed, refused, the endpoint gave up) carries ``error`` and the batch goes
on. Line parameters are merged over the command's (``--labels``, ``--parameters`` …).
"""

from __future__ import annotations

import json
import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from hfa.errors import HfaError, UsageError, from_exception
from hfa.infer.tasks import Outcome, Task, check_parameters, make_inputs


@dataclass
class BatchRequest:
    id: Any
    inputs: Any = None
    parameters: dict[str, Any] = field(default_factory=dict)
    error: str | None = None  # set when the line itself is malformed


def parse_line(
    lineno: int, text: str, task: Task, defaults: dict[str, Any], *, context: str | None = None
) -> BatchRequest | None:
    """One line as a request (None for a blank line); a malformed line becomes a request carrying its error."""
    if not text.strip():
        return None
    try:
        doc = json.loads(text)
    except ValueError as exc:
        return BatchRequest(lineno, error=f"line {lineno} is not JSON: {exc}")
    if isinstance(doc, str):
        doc = {"inputs": doc}
    if not isinstance(doc, dict):
        return BatchRequest(lineno, error=f'line {lineno} must be an object like {{"id": …, "inputs": …}}')
    ident = doc.get("id", lineno)
    if ident is None or isinstance(ident, (dict, list)):
        return BatchRequest(lineno, error=f"line {lineno}: id must be a string or a number")
    if "inputs" not in doc:
        return BatchRequest(ident, error=f'line {lineno} has no "inputs"')
    own = doc.get("parameters") or {}
    if not isinstance(own, dict):
        return BatchRequest(ident, error=f'line {lineno}: "parameters" must be an object')
    try:
        parameters = {**defaults, **own}
        check_parameters(task, parameters)
        inputs = make_inputs(task, doc["inputs"], context=context)
    except HfaError as exc:
        return BatchRequest(ident, error=f"line {lineno}: {exc}")
    return BatchRequest(ident, inputs, parameters)


def parse_lines(
    lines: Iterable[str], task: Task, defaults: dict[str, Any], *, context: str | None = None
) -> Iterator[BatchRequest]:
    for lineno, text in enumerate(lines, start=1):
        request = parse_line(lineno, text, task, defaults, context=context)
        if request is not None:
            yield request


MAX_INPUT_LINE = 16 * 1024 * 1024  # bytes of one request line; a longer one is refused before anything runs


def read_jsonl(source: str, *, limit: int = MAX_INPUT_LINE) -> list[str]:
    """The lines of the JSON-lines file ``source`` (``-``: stdin), read to the end.

    Lines end at ``\n`` only (and a ``\r`` before it): a U+2028 or a form feed inside a JSON
    string is text, not a line break, as JSON-lines readers split. Each line is checked to be
    UTF-8 (a byte-order mark at the start is dropped) and at most ``limit`` bytes, so a file
    with a line of gigabytes is refused without being held in memory. Errors name the line.
    """
    import sys

    from hfa.errors import LocalError

    where = "stdin" if source == "-" else f"'{source}'"
    try:
        fp = sys.stdin.buffer if source == "-" else open(source, "rb")  # noqa: SIM115
    except OSError as exc:
        raise LocalError(
            f"Cannot read --jsonl {where}: {exc.strerror or exc}", "pass a UTF-8 JSON-lines file or -"
        ) from None
    lines: list[str] = []
    try:
        while True:
            try:
                raw = fp.readline(limit + 1)
            except OSError as exc:
                raise LocalError(
                    f"Cannot read --jsonl {where}: {exc.strerror or exc}", "pass a UTF-8 JSON-lines file or -"
                ) from None
            if not raw:
                return lines
            number = len(lines) + 1
            if len(raw) > limit and not raw.endswith(b"\n"):
                raise UsageError(
                    f"Line {number} of --jsonl {where} is over {limit // (1 << 20)} MiB",
                    "split the request, or send the input as a file the task reads",
                )
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise UsageError(
                    f"Line {number} of --jsonl {where} is not UTF-8 (byte {exc.start + 1} of the line)",
                    "save the file as UTF-8 (e.g. iconv -t UTF-8)",
                ) from None
            if number == 1:
                text = text.removeprefix("\ufeff")
            lines.append(text.removesuffix("\n").removesuffix("\r"))
    finally:
        if fp is not sys.stdin.buffer:
            fp.close()


def describe_error(exc: BaseException) -> str:
    err = from_exception(exc)
    return str(err) if err is not None else f"internal error: {type(exc).__name__}: {exc}"


def run_batch(
    requests: Iterable[BatchRequest],
    handle: Callable[[BatchRequest], Any],
    *,
    concurrency: int = 4,
    on_done: Callable[[bool], None] | None = None,
) -> Iterator[dict[str, Any]]:
    """Run ``handle`` on every request, ``concurrency`` at once; yield output lines in input order.

    Requests are read lazily (a pipe may be endless): at most ``4 * concurrency`` are in flight or
    waiting to be written. ``on_done(ok)`` is called as each request finishes (from worker threads).
    """
    if concurrency < 1:
        raise UsageError(f"--concurrency must be at least 1, not {concurrency}", "pass --concurrency 4")
    window = 4 * concurrency
    lock = threading.Lock()

    def work(request: BatchRequest) -> dict[str, Any]:
        if request.error is not None:
            line = {"id": request.id, "error": request.error}
        else:
            try:
                value = handle(request)
                if isinstance(value, Outcome):  # a line says which provider answered, and how
                    line = {"id": request.id, **value.fields(), "result": value.result}
                else:
                    line = {"id": request.id, "result": value}
            except Exception as exc:
                line = {"id": request.id, "error": describe_error(exc)}
        if on_done is not None:
            with lock:
                on_done("error" not in line)
        return line

    pending: deque[Future[dict[str, Any]]] = deque()
    with ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="hfa-infer") as pool:
        try:
            for request in requests:
                pending.append(pool.submit(work, request))
                while len(pending) >= window or (pending and pending[0].done()):
                    yield pending.popleft().result()
            while pending:
                yield pending.popleft().result()
        finally:
            for future in pending:
                future.cancel()
