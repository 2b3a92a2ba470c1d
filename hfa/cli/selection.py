"""Selection options shared by `hfa pull`, `hfa info` (and `hfa pin`)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

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
TrustRemoteCodeOpt = Annotated[
    bool,
    typer.Option(
        "--trust-remote-code", help="Also fetch the repo's *.py files (code a loader would run).", rich_help_panel=SEL
    ),
]


def build_options(
    framework: list[str] | None,
    quant: str | None,
    include: list[str] | None,
    exclude: list[str] | None,
    all_files: bool,
    config_only: bool,
    subfolder: str | None,
    trust_remote_code: bool,
):  # -> SelectOptions (lazy import keeps --help fast)
    from hfa.errors import UsageError
    from hfa.resolver import check_subfolder
    from hfa.select import FRAMEWORKS, SelectOptions

    frameworks = tuple(framework or ())
    for fw in frameworks:
        if fw not in FRAMEWORKS:
            raise UsageError(f"Unknown framework '{fw}'", f"use one of: {', '.join(FRAMEWORKS)}")
    if all_files and config_only:
        raise UsageError("--all and --config-only contradict each other", "pass one of them")
    return SelectOptions(
        frameworks=frameworks,
        quant=quant,
        include=tuple(include or ()),
        exclude=tuple(exclude or ()),
        all=all_files,
        config_only=config_only,
        subfolder=check_subfolder(subfolder),
        trust_remote_code=trust_remote_code,
    )


LockOpt = Annotated[
    Path,
    typer.Option("--lock", help="The lock file.", dir_okay=False, rich_help_panel="Lock"),
]


def options_given(
    framework: list[str] | None,
    quant: str | None,
    include: list[str] | None,
    exclude: list[str] | None,
    all_files: bool,
    config_only: bool,
    subfolder: str | None,
    trust_remote_code: bool,
) -> bool:
    return bool(framework or quant or include or exclude or all_files or config_only or subfolder or trust_remote_code)
