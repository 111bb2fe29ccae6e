"""What the product commands and the bench commands share: logging, file arguments, JSON."""

from __future__ import annotations

import json
import logging
from typing import TYPE_CHECKING, Any

import typer

if TYPE_CHECKING:
    from pathlib import Path

__all__ = ("existing_file", "save_json", "setup_logging")


def existing_file(path: Path) -> Path:
    if not path.is_file():
        raise typer.BadParameter(f"no such file: {path}")
    return path


def save_json(report: dict[str, Any], output: Path) -> None:
    output.write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n")


def setup_logging(verbose: bool) -> None:
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    if not verbose:  # a busy CPU is the point of a command-line run, not news
        logging.getLogger("voicesub_stream.alerts").setLevel(logging.ERROR)
