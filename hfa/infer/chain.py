"""Providers in order, with fallback, limits and cooldowns: the runner behind ``hfa infer`` (docs/infer.md).

:class:`ProviderChain` is a :class:`~hfa.infer.tasks.Runner` over the ``[[infer.providers]]`` of
``hfa.toml`` (or one implicit provider, today's single route, when there are none). Each request
tries the providers in order:

* a provider cooling down (it failed recently, in this or another process) or at one of its limits
  is passed over, and waited for only when no later provider can answer;
* its limits are counted before the request is sent (:class:`~hfa.infer.limits.StateStore`);
* it falls over to the next on a network failure or timeout, 5xx after the retries, 404 or a
  model it does not support, a 429 or loading model whose wait passes the deadline, a used-up
  quota, a server that cannot run models (501) or refuses the model by policy; failures that are
  the provider's (not the model's) cool it down, at least its ``Retry-After``, longer each time;
* 401/403 skips it, and says so; 400, 413 and 422 stop at once: the same input fails everywhere.

:class:`hfa.infer.orchestrator.Orchestrator` is the Python API over it.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hfa.config import Settings
from hfa.errors import AccessDenied, CheckFailed, HfaError, NetworkError, NotFound, OfflineError, UsageError
from hfa.infer.client import (
    CLOCK,
    DEFAULT_TIMEOUT,
    Clock,
    InferenceAPI,
    RequestHooks,
    load_local_runner,
    model_url,
    token_for,
)
from hfa.infer.providers import ProviderSpec
from hfa.infer.tasks import Outcome, Runner, Task, get_task
from hfa.resolve.refs import RepoRef

if TYPE_CHECKING:  # the store is imported only when a provider has limits or cooldowns to keep
    from hfa.infer.limits import Refusal, StateStore

__all__ = ["LimitReached", "Member", "NamedProviderAPI", "ProviderChain", "ProvidersRoute", "member_for"]

ProvidersRoute = "providers"  # the route in the result-cache key of an orchestrated run: any provider, one model commit


class LimitReached(HfaError):
    """hfa's own limiter refused a request to one provider (handled inside the chain)."""

    exit_code = NetworkError.exit_code

    def __init__(self, refusal: Refusal) -> None:
        super().__init__(refusal.message, "wait, or add another provider to hfa.toml (docs/infer.md)")
        self.refusal = refusal


@dataclass
class Member:
    """One provider, ready to run: its spec, and whether its limits and cooldowns use the shared store."""

    spec: ProviderSpec
    make: Callable[[], Runner]
    persist: bool = True
    _runner: Runner | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def runner(self) -> Runner:
        with self._lock:
            if self._runner is None:
                self._runner = self.make()
            return self._runner


@dataclass
class _Attempt:
    """What one request went through, for its Outcome."""

    attempts: int = 0
    waited: float = 0.0
    fallbacks: list[dict[str, str]] = field(default_factory=list)


def _fallback(name: str, error: str) -> dict[str, str]:
    return {"provider": name, "error": error}


class ProviderChain:
    """A Runner that tries its members in order (see the module's docstring)."""

    def __init__(
        self,
        members: list[Member],
        *,
        route: str,
        timeout: float = DEFAULT_TIMEOUT,
        state: StateStore | None = None,
        clock: Clock | None = None,
        on_event: Callable[[str], None] | None = None,
        on_warning: Callable[[str], None] | None = None,
        model: str | None = None,
    ) -> None:
        if timeout <= 0:
            raise UsageError(f"--timeout must be positive, not {timeout:g}", "pass seconds, e.g. --timeout 300")
        self.members = members
        self.route = route
        self.timeout = timeout
        self.state = state
        self.clock = clock or CLOCK
        self.on_event = on_event
        self.on_warning = on_warning
        self.model = model

    def _say(self, text: str) -> None:
        if self.on_event is not None:
            self.on_event(text)

    def run(self, task: str, inputs: Any, parameters: dict[str, Any]) -> Any:
        return self.run_outcome(task, inputs, parameters).result

    # -- one request --------------------------------------------------------------------------------
    def run_outcome(self, task: str, inputs: Any, parameters: dict[str, Any]) -> Outcome:
        spec = get_task(task)
        started = self.clock.now()
        deadline = started + self.timeout
        chars = _characters(inputs)
        trail = _Attempt()
        candidates: list[Member] = []
        for member in self.members:
            why = member.spec.serves(spec.name, self.model)
            if why is None:
                candidates.append(member)
            else:
                self._say(f"provider '{member.spec.name}': skipped ({why})")
        if not candidates:
            raise UsageError(
                f"No provider in hfa.toml serves {spec.name} with {self.model or 'this model'}",
                "add it to a provider's tasks/models, or enable a provider (docs/infer.md)",
            )
        last_error: HfaError | None = None
        tried = 0
        pending = list(candidates)
        while True:
            blocked: list[tuple[Member, float, str]] = []  # (member, free at (epoch), why)
            for member in pending:
                name = member.spec.name
                if tried and self.clock.now() >= deadline:  # the ones before used the time up: never asked
                    trail.fallbacks.append(_fallback(name, f"not tried: the {self.timeout:g} s deadline passed"))
                    continue
                if member.persist and self.state is not None:
                    from hfa.infer.limits import clock_time

                    cool = self.state.cooldown(name)
                    if cool is not None:
                        why = f"cooling down until {clock_time(cool.until)} ({cool.reason})"
                        self._say(f"provider '{name}': {why}")
                        blocked.append((member, cool.until, why))
                        continue
                    refusal = self.state.acquire(member.spec, chars)
                    if refusal is not None:
                        self._say(f"provider '{name}': {refusal.message}")
                        if refusal.free_at is None:
                            trail.fallbacks.append(_fallback(name, refusal.message))
                        else:
                            blocked.append((member, refusal.free_at, refusal.message))
                        continue
                tried += 1
                try:
                    result = self._attempt(member, spec, inputs, parameters, deadline, trail)
                except LimitReached as exc:
                    assert exc.refusal.free_at is not None
                    blocked.append((member, exc.refusal.free_at, exc.message))
                    continue
                except HfaError as exc:
                    last_error = exc
                    if not self._handle_failure(member, exc, trail):
                        raise
                    continue
                if member.persist and self.state is not None:
                    self.state.clear(name)
                passed = [_fallback(m.spec.name, why) for m, _, why in blocked]  # passed over: cooling, limited
                return Outcome(
                    result,
                    provider=name,
                    attempts=trail.attempts,
                    fallbacks=trail.fallbacks + passed,
                    latency_ms=round((self.clock.now() - started) * 1000),
                    waited_s=round(trail.waited, 3),
                )
            if not blocked:
                raise self._exhausted(trail, last_error, tried)
            first = min(until for _, until, _ in blocked)
            wait = max(0.0, first - time.time())
            if wait >= deadline - self.clock.now():
                for member, _, why in blocked:
                    trail.fallbacks.append(_fallback(member.spec.name, why))
                raise self._exhausted(trail, None, tried)
            self._say(f"every provider is cooling down or at a limit; waiting {wait:.1f} s")
            trail.waited += wait
            self.clock.sleep(wait)
            pending = [member for member, _, _ in blocked]

    def _attempt(
        self, member: Member, spec: Task, inputs: Any, parameters: dict[str, Any], deadline: float, trail: _Attempt
    ) -> Any:
        name = member.spec.name
        try:
            runner = member.runner()
        except OfflineError:
            raise
        except HfaError as exc:
            # e.g. a local provider without the infer extra, or a model not in the cache
            raise _Unavailable(f"cannot start: {exc.message}") from exc
        first = True

        def before_attempt() -> None:
            nonlocal first
            trail.attempts += 1
            self._say(f"provider '{name}': attempt {trail.attempts}")
            if first:
                first = False  # the chain counted this one before calling
                return
            if not (member.persist and self.state is not None):
                return
            while True:
                refusal = self.state.acquire(member.spec, None)  # a retry or a loading poll is a request
                if refusal is None:
                    return
                wait = (refusal.free_at or float("inf")) - time.time()
                if refusal.free_at is None or wait >= deadline - self.clock.now():
                    raise LimitReached(refusal)
                self._say(f"provider '{name}': {refusal.message}; waiting {wait:.1f} s")
                trail.waited += wait
                self.clock.sleep(wait)

        def observe(status: int, headers: Any) -> None:
            if member.persist and self.state is not None:
                held = _rate_limit_hold(headers)
                if held is not None:
                    self.state.hold(name, time.time() + held, "the provider's RateLimit headers say none are left")

        def waited(seconds: float) -> None:
            trail.waited += seconds
            self._say(f"provider '{name}': waiting {seconds:.1f} s")

        if isinstance(runner, InferenceAPI):
            return runner.run_until(
                spec.name, inputs, parameters, deadline, RequestHooks(before_attempt, observe, waited)
            )
        before_attempt()
        return runner.run(spec.name, inputs, parameters)

    def _handle_failure(self, member: Member, exc: HfaError, trail: _Attempt) -> bool:
        """Record a failed provider (cool it down if the failure is its own); False: the error is final."""
        name = member.spec.name
        details = exc.details
        status = details.get("status")
        cool: float | None = None
        if isinstance(exc, OfflineError):
            return False
        if isinstance(exc, _Unavailable):
            pass  # could not start for this model (not cached, no extra): not the provider's fault
        elif isinstance(exc, NetworkError):
            from hfa.infer.limits import QUOTA_COOLDOWN

            retry_after = details.get("retry_after")
            cool = float(retry_after) if isinstance(retry_after, (int, float)) else 0.0
            if details.get("reason") == "quota":
                cool = max(cool, QUOTA_COOLDOWN)
        elif isinstance(exc, AccessDenied):
            note = f"provider '{name}' refused access ({exc.message}); skipped it"
            if self.on_warning is not None:
                self.on_warning(note)
        elif isinstance(exc, NotFound):
            pass  # this model, not the provider
        elif isinstance(exc, UsageError):
            if status == 501:
                cool = 0.0
            elif "not supported" not in exc.message.lower():
                return False  # 400, 413, 422, bad parameters: the same input would fail everywhere
        elif isinstance(exc, CheckFailed):
            pass  # a policy refusal or an unreadable answer from this provider
        else:
            return False
        trail.fallbacks.append(_fallback(name, exc.message))
        self._say(f"provider '{name}' failed: {exc.message}")
        if cool is not None and member.persist and self.state is not None:
            from hfa.infer.limits import clock_time

            cooled = self.state.cool(name, _short(exc.message), at_least=cool or None)
            self._say(f"provider '{name}': cooling down until {clock_time(cooled.until)}")
        return True

    def _exhausted(self, trail: _Attempt, last: HfaError | None, tried: int) -> HfaError:
        if last is not None and tried == 1 and len(self.members) == 1:
            if isinstance(last, _Unavailable) and isinstance(last.__cause__, HfaError):
                return last.__cause__  # e.g. --local without the extra, a token_env holding no token: as they are
            return last  # one provider: its own error, as a plain `hfa infer` gives it
        if last is None and len(trail.fallbacks) == 1:  # one provider, at a limit or cooling down
            return NetworkError(
                trail.fallbacks[0]["error"],
                "wait, raise --timeout, or add another provider to hfa.toml (docs/infer.md)",
                details={"fallbacks": trail.fallbacks},
            )
        if trail.fallbacks and all("refused access" in f["error"] or "gated" in f["error"] for f in trail.fallbacks):
            return AccessDenied(
                "Every provider refused access: "
                + "; ".join(f"'{f['provider']}': {f['error']}" for f in trail.fallbacks),
                "check each provider's token_env in hfa.toml",
                details={"fallbacks": trail.fallbacks},
            )
        what = "; ".join(f"'{f['provider']}': {f['error']}" for f in trail.fallbacks) or "none could be tried"
        return NetworkError(
            f"No provider answered within the {self.timeout:g} s deadline — {what}",
            "retry later, raise --timeout, or see `hfa infer usage`",
            details={"fallbacks": trail.fallbacks},
        )


class _Unavailable(NetworkError):
    """A provider that could not be started for this request."""


def _short(text: str) -> str:
    return text if len(text) <= 200 else text[:197] + "…"


def _characters(inputs: Any) -> int:
    if isinstance(inputs, str):
        return len(inputs)
    if isinstance(inputs, dict):
        return sum(_characters(v) for v in inputs.values())
    if isinstance(inputs, list):
        return sum(_characters(v) for v in inputs)
    return 0


def _rate_limit_hold(headers: Any) -> float | None:
    """Seconds the provider says it has no requests left (``RateLimit-Remaining: 0`` with ``-Reset``,
    ``X-RateLimit-*``, or the combined ``RateLimit: remaining=0, reset=N``); None otherwise."""

    def number(value: Any) -> float | None:
        try:
            found = float(str(value).strip())
        except (TypeError, ValueError):
            return None
        return found if math.isfinite(found) else None  # nan, inf: unreadable

    remaining = reset = None
    for prefix in ("RateLimit-", "X-RateLimit-"):
        remaining = remaining if remaining is not None else number(headers.get(prefix + "Remaining"))
        reset = reset if reset is not None else number(headers.get(prefix + "Reset"))
    combined = headers.get("RateLimit")
    if combined and remaining is None:
        parts = dict(p.strip().partition("=")[::2] for p in str(combined).replace(";", ",").split(","))
        remaining, reset = number(parts.get("remaining")), number(parts.get("reset"))
    if remaining is None or remaining > 0 or reset is None or reset < 0:
        return None
    if reset > 1e9:  # an epoch time, as some providers send it
        reset -= time.time()
    return min(max(reset, 0.0), 86400.0)


# -- building members -------------------------------------------------------------------------------
def member_for(
    settings: Settings,
    spec: ProviderSpec,
    ref: RepoRef | None,
    *,
    timeout: float,
    on_wait: Callable[[str], None] | None = None,
    local_options: dict[str, Any] | None = None,
) -> Member:
    """The Member running ``spec`` for ``ref``; runners are made on first use."""

    def make() -> Runner:
        if spec.kind == "local":
            if ref is None:
                raise UsageError("a local provider needs a model", "pass --model or pin a task default")
            return load_local_runner(settings, ref, **(local_options or {}))
        if settings.offline:
            raise OfflineError("Offline mode is on", "drop --offline / HF_HUB_OFFLINE")
        if spec.kind == "provider":
            if ref is None:
                raise UsageError(f"provider '{spec.name}' needs a model", "pass --model or pin a task default")
            return NamedProviderAPI(
                spec.provider or "",
                ref.repo_id,
                token=spec.token(),
                timeout=timeout,
                on_wait=on_wait,
            )
        url, pipeline_routes = model_url(settings, ref, spec.url if spec.kind == "endpoint" else None)
        token = spec.token() if spec.token_env or spec.kind == "endpoint" else token_for(url, settings)
        return InferenceAPI(
            url,
            model=ref.repo_id if ref else None,
            token=token,
            pipeline_routes=pipeline_routes,
            timeout=timeout,
            on_wait=on_wait,
            hub_endpoint=settings.endpoint if spec.kind == "hf-inference" else None,
        )

    return Member(spec, make)


class NamedProviderAPI(InferenceAPI):
    """A named Inference Provider through huggingface_hub's own provider support (``provider="together"``).

    The client maps the model to the provider's id and builds the request; hfa adds its retries,
    deadline and errors. The token (``token_env``) goes where huggingface_hub sends it for that
    provider: its routed URL on huggingface.co, or the provider's own API.
    """

    def __init__(self, provider: str, model: str, **options: Any) -> None:
        super().__init__(f"provider:{provider}", model=model, pipeline_routes=False, **options)
        self.provider = provider

    def url_for(self, task: Task) -> str:
        return self.route

    def _call(self, url: str, timeout: float, spec: Task, inputs: Any, kwargs: dict[str, Any]) -> Any:
        import json

        from huggingface_hub import InferenceClient
        from huggingface_hub.inference._providers import get_provider_helper

        from hfa.infer.client import plain_value

        try:
            get_provider_helper(self.provider, task=spec.name, model=self.model)  # type: ignore[arg-type]
        except (ValueError, KeyError) as exc:
            raise UsageError(
                f"provider '{self.provider}': {spec.name} is not supported ({exc})",
                "list the tasks it serves with tasks = [...] in hfa.toml",
            ) from None
        client = InferenceClient(
            provider=self.provider,  # type: ignore[arg-type]
            api_key=self._token,
            timeout=timeout,
            headers={"Accept-Encoding": "gzip, deflate"},  # what hfa decodes within its bound
        )
        method = getattr(client, spec.method)
        if spec.input_kind == "qa":
            result = method(inputs["question"], inputs["context"], model=self.model, **kwargs)
        elif spec.input_kind == "image":
            result = method(Path(inputs), model=self.model, **kwargs)
        else:
            result = method(inputs, model=self.model, **kwargs)
        if isinstance(result, (bytes, bytearray)):
            return bytes(result)
        if hasattr(result, "save"):  # a PIL image from text_to_image
            import io

            buffer = io.BytesIO()
            result.save(buffer, format="PNG")
            return buffer.getvalue()
        return json.loads(json.dumps(result, default=plain_value))
