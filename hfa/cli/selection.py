"""Selection options shared by `hfa pull`, `hfa info` and `hfa pin`.

Each command declares them with the aliases below and gathers their values in a
:class:`SelectionArgs`, which checks them and converts them into the resolver's
:class:`hfa.resolve.selection.SelectOptions`.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from pathlib import Path
from typing import Annotated, Any

import typer

SEL = "Selection"

RepoTypeOpt = Annotated[
    str | None,
    typer.Option(
        "--repo-type",
        help="model, dataset or space (default: model, or from a datasets/ or spaces/ prefix).",
        show_default=False,
    ),
]
FrameworkOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--framework",
        help="Weights to fetch: pt, safetensors, tf, flax, onnx, openvino, gguf (repeatable). Default: safetensors when"
        " present, else pickle (pt).",
        rich_help_panel=SEL,
        show_default=False,
    ),
]
QuantOpt = Annotated[
    str | None,
    typer.Option("--quant", help="GGUF repos: the one quantisation to fetch, e.g. Q4_K_M.", rich_help_panel=SEL),
]
IncludeOpt = Annotated[
    list[str] | None,
    typer.Option("--include", help="Also fetch files matching this glob (repeatable).", rich_help_panel=SEL),
]
ExcludeOpt = Annotated[
    list[str] | None,
    typer.Option("--exclude", help="Never fetch files matching this glob (repeatable; wins).", rich_help_panel=SEL),
]
AllOpt = Annotated[bool, typer.Option("--all", help="Fetch every file (but --exclude).", rich_help_panel=SEL)]
ConfigOnlyOpt = Annotated[
    bool, typer.Option("--config-only", help="Only configs, tokenizer files and the README.", rich_help_panel=SEL)
]
SubfolderOpt = Annotated[
    str | None,
    typer.Option("--subfolder", help="Only files under this folder (diffusers components).", rich_help_panel=SEL),
]
VariantOpt = Annotated[
    str | None,
    typer.Option(
        "--variant",
        help="Weights variant to fetch instead of the plain files where one exists, e.g. fp16 (as from_pretrained's"
        " variant=). Default: the plain files.",
        rich_help_panel=SEL,
        show_default=False,
    ),
]
TrustRemoteCodeOpt = Annotated[
    bool,
    typer.Option(
        "--trust-remote-code", help="Also fetch the repo's *.py files (code a loader would run).", rich_help_panel=SEL
    ),
]


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


LockOpt = Annotated[
    Path,
    typer.Option("--lock", help="The lock file.", dir_okay=False, rich_help_panel="Lock"),
]
