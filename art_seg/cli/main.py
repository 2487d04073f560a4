"""The ``art-seg`` command: ``demo``, ``train``, ``attack``, ``evaluate`` and ``benchmark``."""

from __future__ import annotations

import argparse
import sys

from art_seg import __version__
from art_seg.cli import attack, benchmark, demo, evaluate, train
from art_seg.cli.common import CommandError


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="art-seg",
        description="Adversarial robustness of segmentation networks (3D medical first), on IBM's ART. "
        "Start with 'art-seg demo'.",
    )
    parser.add_argument("--version", action="version", version=f"art-seg {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for module in (demo, train, attack, evaluate, benchmark):
        module.add_parser(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run ``art-seg``; user errors print ``art-seg <command>: error: ...`` and return 2."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        args.run(args)
    except (CommandError, ValueError, TypeError, FileNotFoundError) as error:
        print(f"art-seg {args.command}: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"art-seg {args.command}: interrupted; run the same command again to resume", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
