"""``python -m flows.<name>``: parse arguments (so ``--help`` never starts a flow), check, run, print the summary."""

from __future__ import annotations

import argparse
import sys
from typing import Any, Callable


def parser_for(module_doc: str | None, prog: str) -> argparse.ArgumentParser:
    """An argument parser whose help is the module's docstring (its run command)."""
    parser = argparse.ArgumentParser(prog=prog, description=module_doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--debug", action="store_true", help="show the full traceback for user errors too")
    return parser


def run_main(parser: argparse.ArgumentParser, start: Callable[[argparse.Namespace], tuple[dict[str, Any], str]],
             argv: list[str] | None = None) -> None:
    """Parse, then ``start(args)`` returns (result, summary line); a user error is one line and exit 2."""
    from juryflow.cli_support import exit_on_user_error, note_demo_config, use_demo_config_by_default

    args = parser.parse_args(argv)
    note_demo_config(use_demo_config_by_default())

    def go() -> None:
        _, line = start(args)
        print(line)

    if args.debug:
        go()
    else:
        exit_on_user_error(go)
    sys.stdout.flush()
