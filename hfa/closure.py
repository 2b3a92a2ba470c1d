"""A repository and everything it requires: the walk that ``hfa pin``, ``hfa pull`` and ``hfa info`` share.

:func:`requirements` reads what one resolved repository needs (:mod:`hfa.resolve.deps`) through
the :class:`~hfa.resolve.source.Source` a pull reads from, so its config files are verified
and bounded like any other small file. :class:`Walk` follows those requirements depth first
from the repos a user named: a repository reached twice is visited once, a requirement that
leads back to a repository on the current path is a cycle, two requirements of one repository
at different revisions are a conflict, and a closure larger than :data:`MAX_CLOSURE` is refused
— each a :class:`~hfa.resolve.deps.DependencyError` (exit 1). A requirement that cannot be
resolved keeps its own error (not found: exit 3; gated: exit 4), its message naming the
repository that requires it and why.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from hfa.errors import HfaError
from hfa.resolve.card import parse_card
from hfa.resolve.deps import MAX_CONFIG_BYTES, Dependencies, DependencyError, Requirement, find
from hfa.resolve.files import Resolved
from hfa.resolve.refs import RepoRef
from hfa.resolve.source import Source

if TYPE_CHECKING:
    from hfa.config import Settings
    from hfa.pull import PullResult
    from hfa.resolve.selection import SelectOptions

MAX_CLOSURE = 64  # repositories in one closure: a model with more dependencies than this is not a model

Key = tuple[str, str]


def requirements(source: Source, resolved: Resolved) -> Dependencies:
    """What ``resolved`` needs and names (its card from the API answer, else its README when small)."""
    ref = resolved.ref

    def read(path: str) -> bytes:
        return source.read_small(ref, resolved, resolved.files[path])

    card = dict(resolved.card_data or {})
    readme = resolved.files.get("README.md")
    if not card and readme is not None and readme.size <= MAX_CONFIG_BYTES:
        try:
            card = parse_card(read("README.md")).data
        except HfaError:
            card = {}
    return find(ref.repo_id, resolved.files, card, read)


@dataclass(frozen=True)
class Edge:
    """``requirer`` needs ``target`` (the ref it is resolved at), as ``requirement`` says."""

    requirer: RepoRef
    target: RepoRef
    requirement: Requirement

    @property
    def what(self) -> str:
        return f"{self.target.repo_id}, required by {self.requirer.display} ({self.requirement.reason})"


@dataclass
class Walk:
    """Depth-first over requirements from the roots.

    ``visit(ref)`` resolves a repository and returns its requirements, or None when it is kept
    as it is (not expanded: a pin already in the lock). ``revision_of(repo_id)`` is the revision
    a requirement without one takes (the lock's, else None: the default branch). An error's hint
    names ``command`` with the root the user named and ``--no-deps``, ready to paste.
    """

    visit: Callable[[RepoRef], list[Requirement] | None]
    revision_of: Callable[[str], str | None] = lambda _repo_id: None
    command: str = "hfa pin"  # the command a hint names (`hfa pin REPO --no-deps`, `hfa pull REPO --no-deps`)
    nodes: dict[Key, RepoRef] = field(default_factory=dict)
    edges: list[Edge] = field(default_factory=list)
    _done: set[Key] = field(default_factory=set)

    def run(self, roots: list[RepoRef]) -> None:
        for ref in roots:  # every root first: a requirement then meets the revision the user asked for
            self.nodes[ref.key] = ref
        for ref in roots:
            self._visit(ref, [], None)

    def _visit(self, ref: RepoRef, path: list[RepoRef], via: Edge | None) -> None:
        key = ref.key
        if key in self._done:
            return
        self._done.add(key)
        try:
            reqs = self.visit(ref)
        except DependencyError:
            raise
        except HfaError as exc:
            raise naming(exc, via, self.no_deps(path)) if via is not None else exc from None
        for req in reqs or []:
            target = self._target(ref, req)
            chain = [*path, ref]
            if any(p.key == target.key for p in chain):
                start = next(i for i, p in enumerate(chain) if p.key == target.key)
                cycle = [p.repo_id for p in chain[start:]] + [target.repo_id]
                raise DependencyError(
                    f"dependency cycle: {' → '.join(cycle)} ({ref.repo_id}: {req.reason})",
                    f"a model cannot require itself; take the repo alone with {self.no_deps(chain)}",
                    details={"cycle": cycle},
                )
            edge = Edge(ref, target, req)
            self.edges.append(edge)
            self._visit(target, chain, edge)

    def no_deps(self, chain: list[RepoRef]) -> str:
        """The command that takes the root of ``chain`` (what the user named) without its dependencies."""
        return f"`{self.command} {chain[0].display} --no-deps`" if chain else f"`{self.command} REPO --no-deps`"

    def _target(self, requirer: RepoRef, req: Requirement) -> RepoRef:
        key = (req.repo_id, "model")
        known = self.nodes.get(key)
        if known is not None:
            if req.revision and req.revision != known.revision:
                if known.revision is None and key not in self._done:
                    known = self.nodes[key] = RepoRef(req.repo_id, "model", req.revision)
                else:
                    raise DependencyError(
                        f"{requirer.display} requires {req.repo_id}@{req.revision} ({req.reason}), but"
                        f" {known.display} is required too; a lock holds one revision of a repository",
                        f"take {requirer.repo_id} alone with `{self.command} {requirer.repo_id} --no-deps`,"
                        f" then name {req.repo_id} at the revision you want",
                    )
            return known
        if len(self.nodes) >= MAX_CLOSURE:
            raise DependencyError(
                f"the closure of the repos given holds more than {MAX_CLOSURE} repositories",
                f"pass --no-deps to `{self.command}` and name the dependencies you need",
            )
        ref = self.nodes[key] = RepoRef(req.repo_id, "model", req.revision or self.revision_of(req.repo_id))
        return ref


def naming(exc: HfaError, edge: Edge, no_deps: str) -> HfaError:
    """``exc`` (resolving ``edge.target``) with the repository that requires it, and why, in its message;
    its hint ends with ``no_deps``, the command that does without the dependency."""
    exc.message = f"{edge.what}: {exc.message}"
    exc.args = (exc.message,)
    exc.hint = f"{exc.hint}; or take the repo alone with {no_deps}" if exc.hint else None
    return exc


def pull_closure(
    settings: Settings, ref: RepoRef, options: SelectOptions, *, deps: bool = True, **kwargs: Any
) -> PullResult:
    """``hfa pull REPO``: pull ``ref`` with ``options``, then (with ``deps``) every repository it requires,
    each with the default selection; the dependencies' results are the root's ``dependencies``."""
    from hfa.pull import open_source, pull
    from hfa.resolve.selection import SelectOptions

    source = kwargs.pop("source", None) or open_source(settings)
    results: dict[Key, PullResult] = {}

    def visit(node: RepoRef) -> list[Requirement]:
        result = pull(settings, node, options if node == ref else SelectOptions(), source=source, **kwargs)
        results[node.key] = result
        if not deps or result.resolved is None:
            return []
        found = requirements(source, result.resolved)
        result.warnings += [f"{node.repo_id}: {note}" for note in found.notes]
        return found.requires

    walk = Walk(visit, command="hfa pull")
    walk.run([ref])
    root = results[ref.key]
    for edge in walk.edges:
        results[edge.target.key].required_by.append({"repo": edge.requirer.display, "reason": edge.requirement.reason})
    root.dependencies = [r for key, r in results.items() if key != ref.key]
    return root


def pull_pinned(settings: Settings, ref: RepoRef, *, deps: bool = True, **kwargs: Any) -> PullResult:
    """:func:`pull_closure` of ``ref`` at a commit with the default selection (a task default's model).

    A commit never changes, so when hfa's record of its file list is in the cache the cache alone
    answers (a warm pull makes no request); anything missing from it is fetched from ``source``
    (default: :func:`hfa.pull.open_source`).
    """
    from hfa.resolve.selection import SelectOptions
    from hfa.resolve.source import CacheSource

    source = kwargs.pop("source", None)
    if not settings.offline:
        cache = CacheSource(settings.cache_dir)
        try:
            _, complete = cache.resolve(ref)
            if complete:
                return pull_closure(settings, ref, SelectOptions(), deps=deps, source=cache, **kwargs)
        except HfaError:
            pass  # not all of it in the cache: from the source
    return pull_closure(settings, ref, SelectOptions(), deps=deps, source=source, **kwargs)
