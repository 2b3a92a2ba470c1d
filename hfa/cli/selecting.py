"""The selection options of ``hfa info``, ``pin`` and ``pull`` as given, and their checks, free of typer
(:mod:`hfa.cli.selection` declares them as typer options; the plain ``hfa pull`` path uses these alone)."""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

__all__ = ["SelectionArgs", "repo_and_options"]


@dataclass(frozen=True)
class SelectionArgs:
    """The selection options as given on the command line (before validation)."""

    framework: list[str] | None = None
    quant: str | None = None
    include: list[str] | None = None
    exclude: list[str] | None = None
    all_files: bool = False
    config_only: bool = False
    subfolder: str | None = None
    trust_remote_code: bool = False
    variant: str | None = None

    def given(self) -> bool:
        return any(getattr(self, f.name) for f in fields(self))

    def to_options(self):  # -> SelectOptions (lazy import keeps --help fast)
        from hfa.errors import UsageError
        from hfa.resolve.resolver import check_subfolder
        from hfa.resolve.selection import FRAMEWORKS, SelectOptions

        frameworks = tuple(self.framework or ())
        for fw in frameworks:
            if fw not in FRAMEWORKS:
                raise UsageError(f"Unknown framework '{fw}'", f"use one of: {', '.join(FRAMEWORKS)}")
        if self.all_files and self.config_only:
            raise UsageError("--all and --config-only contradict each other", "pass one of them")
        return SelectOptions(
            frameworks=frameworks,
            quant=self.quant,
            include=tuple(self.include or ()),
            exclude=tuple(self.exclude or ()),
            all=self.all_files,
            config_only=self.config_only,
            subfolder=check_subfolder(self.subfolder),
            trust_remote_code=self.trust_remote_code,
            variant=self.variant.strip() if self.variant is not None else None,
        )


def repo_and_options(
    repo: str, repo_type: str | None, sel: SelectionArgs
) -> tuple[Any, Any]:  # (RepoRef, SelectOptions)
    """``REPO[@REV][:QUANT]`` and the selection options, the quant merged in."""
    from dataclasses import replace

    from hfa.errors import UsageError
    from hfa.resolve.refs import RepoRef

    ref, quant = RepoRef.parse_spec(repo, repo_type)
    options = sel.to_options()
    if quant is not None:
        if options.quant is not None and options.quant.upper() != quant.upper():
            raise UsageError(
                f"{ref.display}:{quant} and --quant {options.quant} disagree", "give the quantisation once"
            )
        options = replace(options, quant=quant)
    return ref, options
