"""One ``hfa infer`` run as a library: the runner, the result cache and its key, and batch I/O.

A :class:`Session` holds what every request of one run shares: the task, the model reference, the
runner (the Inference API, another server, or ``--local``) behind the result cache, and the commit
that keys the cache. It answers one request (:meth:`Session.answer`, then :meth:`Session.save`),
a selftest, or a JSON-lines batch (:meth:`Session.open_batch`, then :meth:`Session.run_batch`),
and writes output files atomically. It never prints: callers report through their own output.

Cache-key policy: a result is cached under the model's commit. A model given by a branch or tag
whose commit cannot be found (``resolve_commit`` answers ``"revision"``) is not cached at all,
because when the branch moves its old results would come back; :attr:`Session.cache_note` says
which rule applied.
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hfa.config import Settings
from hfa.errors import LocalError, UsageError, public_url
from hfa.infer.batch import BatchRequest, parse_lines, run_batch
from hfa.infer.cache import CachedRunner, ResultCache
from hfa.infer.client import make_runner, resolve_commit
from hfa.infer.tasks import Outcome, SelftestReport, Task, check_parameters, image_type, make_inputs, selftest
from hfa.resolve.refs import RepoRef

if TYPE_CHECKING:
    from hfa.infer.limits import StateStore
    from hfa.infer.providers import ProviderSpec


class Session:
    """What one run needs: the task, the runner (cached), and the cache key."""

    def __init__(
        self,
        settings: Settings,
        spec: Task,
        model: str | None,
        *,
        endpoint_url: str | None = None,
        local: bool = False,
        timeout: float = 300.0,
        use_cache: bool = True,
        on_wait: Callable[[str], None] | None = None,
        local_options: dict[str, Any] | None = None,
        providers: list[ProviderSpec] | None = None,
        state: StateStore | None = None,
        on_event: Callable[[str], None] | None = None,
        on_warning: Callable[[str], None] | None = None,
    ) -> None:
        """``providers`` (hfa.toml's ``[[infer.providers]]``): requests go to them in order, with
        fallback, limits and cooldowns (``state``), unless ``endpoint_url`` or ``local`` names one
        route for this run. ``on_event``: each attempt, wait and fallback (``-v``); ``on_warning``:
        a provider skipped because it refused access."""
        self.spec = spec
        self.ref = RepoRef.parse(model) if model else None
        if self.ref is not None and self.ref.repo_type != "model":
            raise UsageError(f"'{model}' is a {self.ref.repo_type}; inference runs models", "pass --model org/name")
        if timeout <= 0:
            raise UsageError(f"--timeout must be positive, not {timeout:g}", "pass seconds, e.g. --timeout 300")
        from hfa.infer.chain import Member, ProviderChain, ProvidersRoute, member_for
        from hfa.infer.providers import ProviderSpec

        repo_id = self.ref.repo_id if self.ref else None
        self.providers = list(providers or []) if not local and endpoint_url is None else []
        if self.providers:
            from hfa.infer.limits import StateStore

            members = [
                member_for(settings, p, self.ref, timeout=timeout, on_wait=on_wait, local_options=local_options)
                for p in self.providers
            ]
            chain = ProviderChain(
                members,
                route=ProvidersRoute,
                timeout=timeout,
                state=state if state is not None else StateStore(on_warning=on_warning),
                on_event=on_event,
                on_warning=on_warning,
                model=repo_id,
            )
        else:  # today's one route, as a chain of one implicit provider: no limits, nothing remembered
            inner = make_runner(
                settings,
                self.ref,
                endpoint_url=endpoint_url,
                local=local,
                timeout=timeout,
                on_wait=on_wait,
                local_options=local_options,
            )
            name = "local" if local else "endpoint" if endpoint_url else "hf-inference"
            chain = ProviderChain(
                [Member(ProviderSpec(name, name), lambda: inner, persist=False)],
                route=inner.route,
                timeout=timeout,
                clock=getattr(inner, "clock", None),
                on_event=on_event,
                model=repo_id,
            )
        self.runner = chain
        self.last_outcome: Outcome | None = None  # how the last answer() was answered
        self.commit: str | None = None
        self.cache_note: str | None = None  # which cache-key rule applied, for a debug line
        if self.ref is not None:
            self.commit, source = resolve_commit(settings, self.ref, ask_hub=not local)
            if source == "revision":
                # A branch name is no key: when it moves, its old results would come back.
                self.cache_note = (
                    f"result cache off: the commit of {self.ref.display} is unknown (pin one with @<commit>)"
                )
                use_cache = False
            else:
                self.cache_note = f"cache key uses {self.ref.repo_id} at {self.commit} ({source})"
        label = self.ref.repo_id if self.ref else public_url(self.runner.route)
        self.model_label = self.ref.display if self.ref else public_url(self.runner.route)
        self.cached = CachedRunner(self.runner, ResultCache() if use_cache else None, model=label, commit=self.commit)

    def describe(self, result: Any, cached: bool, outcome: Outcome | None = None) -> dict[str, Any]:
        """The JSON document of one answer: the task, model, commit, route, and the result (and with
        ``outcome``: provider, attempts, fallbacks, latency_ms, waited_s)."""
        doc = {
            "task": self.spec.name,
            "model": self.model_label,
            "commit": self.commit,
            "route": public_url(self.runner.route),
            "cached": cached,
        }
        if outcome is not None:
            doc.update(outcome.fields())
        doc["result"] = result
        return doc

    # -- one request ------------------------------------------------------------------------------
    def answer(
        self, text: str | None, file: Path | None, params: dict[str, Any], context: str | None, output: Path | None
    ) -> tuple[Any, bool]:
        """Run one request from ``text`` or ``file``: (the result, whether the cache answered it)."""
        spec = self.spec
        if spec.binary_output and output is None:
            raise UsageError(
                f"{spec.name} writes an image", f"pass --output FILE, e.g. hfa infer {spec.name} … -o out.png"
            )
        if file is not None and spec.input_kind != "image":
            try:
                raw: Any = file.read_text(encoding="utf-8").rstrip("\n")
            except (OSError, UnicodeDecodeError) as exc:
                raise LocalError(f"Cannot read --input-file '{file}': {exc}", "pass a UTF-8 text file") from None
        else:
            raw = str(file) if file is not None else text
        check_parameters(spec, params)
        inputs = make_inputs(spec, raw, context=context)
        self.last_outcome = self.cached.run_outcome(spec.name, inputs, params)
        return self.last_outcome.result, self.last_outcome.cached

    def save(self, result: Any, output: Path | None) -> dict[str, Any] | None:
        """Write ``result`` to ``output`` (the image, or the JSON); for an image, what to show instead of it."""
        if self.spec.binary_output:
            assert output is not None
            write_atomic(output, result)
            return {"file": str(output), "bytes": len(result), "content_type": image_type(result)}
        if output is not None:
            write_atomic(output, (json.dumps(result, indent=2, ensure_ascii=False) + "\n").encode("utf-8"))
        return None

    # -- selftest ---------------------------------------------------------------------------------
    def selftest(self, params: dict[str, Any]) -> SelftestReport:
        """Run the task's built-in input and check the result (CheckFailed if it is wrong)."""
        return selftest(self.cached, self.spec, params)

    # -- batch ------------------------------------------------------------------------------------
    def open_batch(self, source: str, concurrency: int, output: Path | None) -> tuple[Iterable[str], int | None]:
        """Check the batch options; the request lines of ``source`` (a file, or ``-`` for stdin) and their count if known."""
        spec = self.spec
        if concurrency < 1:
            raise UsageError(f"--concurrency must be at least 1, not {concurrency}", "pass --concurrency 4")
        if spec.binary_output:
            if output is None:
                raise UsageError(f"{spec.name} in a batch writes one image per line", "pass --output DIR")
            output.mkdir(parents=True, exist_ok=True)
        elif output is not None:
            raise UsageError("--output with --jsonl is only for text-to-image", "redirect stdout to save the results")
        if source == "-":
            return sys.stdin, None
        from hfa.infer.batch import read_jsonl

        lines = read_jsonl(source)
        return lines, sum(1 for line in lines if line.strip())

    def run_batch(
        self,
        lines: Iterable[str],
        params: dict[str, Any],
        context: str | None,
        concurrency: int,
        output: Path | None,
        on_done: Callable[[bool], None] | None = None,
    ) -> Iterator[dict[str, Any]]:
        """One result line per request line, in input order (failed requests as lines with ``"error"``)."""
        spec = self.spec

        def handle(request: BatchRequest) -> Outcome:
            outcome = self.cached.run_outcome(spec.name, request.inputs, request.parameters)
            if spec.binary_output:
                assert output is not None
                path = output / f"{safe_name(request.id)}.png"
                write_atomic(path, outcome.result)
                outcome.result = {"file": str(path), "bytes": len(outcome.result)}
            return outcome

        requests = parse_lines(lines, spec, params, context=context)
        yield from run_batch(requests, handle, concurrency=concurrency, on_done=on_done)


def safe_name(ident: Any) -> str:
    """A file name made from a batch line's id: letters, digits, ``._-`` only, at most 100 characters."""
    name = re.sub(r"[^A-Za-z0-9._-]+", "_", str(ident)).strip("._") or "result"
    return name[:100]


def write_atomic(path: Path, data: bytes) -> None:
    """Write through a temporary file and a rename: never half an output file (mode as open() gives)."""
    from hfa.cache.layout import atomic_write_bytes

    atomic_write_bytes(path.expanduser(), data)
