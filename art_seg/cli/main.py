"""The ``art-seg`` command: ``demo``, ``train``, ``attack``, ``evaluate`` and ``benchmark``.

Errors end a command with one line on stderr, ``art-seg <command>: error: <what, naming the file>``, never a
traceback, and a non-zero exit status:

- 2: a usage error, as argparse's own: a command-line value that cannot be used (:class:`CommandError`);
- 1: the run failed: a file that cannot be read or written (``OSError``: full disk, read-only or missing file,
  permission), an input that is malformed (``ValueError``, and the data layer's ``SubjectError``,
  ``NiftiValidationError`` and ``LabelValueError``, which are ``ValueError``-s; ``KeyError``, ``TypeError``),
  a computation that failed (``RuntimeError``: a non-finite loss, a CUDA error) or memory that ran out
  (``MemoryError``);
- 130: interrupted (Ctrl-C); the same command resumes.

Any other exception is a bug in art-seg and keeps its traceback.
"""

from __future__ import annotations

import argparse
import re
import sys

from art_seg import __version__
from art_seg.cli import attack, benchmark, demo, evaluate, train
from art_seg.cli.common import CommandError

#: What ends a run with exit status 1 and one line (usage errors, :class:`CommandError`, give 2).
FAILURES = (OSError, ValueError, TypeError, KeyError, RuntimeError, MemoryError)

_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_REFUSED = re.compile(r"WeightsUnpickler error:\s*(.*?)(?:\s+Please use|\s+Check the documentation|$)", re.DOTALL)


def _without_unsafe_advice(text: str) -> str:
    """``text`` with torch's refusal of a pickle under ``weights_only=True`` cut down to what was refused: its
    advice to load the file with ``weights_only=False`` (which runs the pickle's code) or to allow-list the
    pickle's globals is dropped."""
    start = text.find("Weights only load failed")
    if start < 0:
        return text
    refused = _REFUSED.search(text, start)
    return text[:start] + "torch.load(weights_only=True) refused it" + (f": {refused[1]}" if refused else "")


def error_line(error: BaseException, output: str | None = None) -> str:
    """The one-line description of ``error`` that follows ``art-seg <command>: error:``.

    An ``OSError`` reads ``'<file>': <reason>``; one that names no file (a write(2) that ran out of space)
    names the command's output folder instead. Newlines and terminal colour codes are removed, and so is
    torch's advice to retry a refused checkpoint with ``weights_only=False``.
    """
    if isinstance(error, OSError) and error.strerror:
        if error.filename is not None:
            text = f"{str(error.filename)!r}"
            if error.filename2 is not None:
                text += f" -> {str(error.filename2)!r}"
            text += f": {error.strerror}"
        else:
            text = error.strerror + (f" (output folder {output!r})" if output else "")
    elif isinstance(error, KeyError):
        text = f"missing entry {error.args[0]!r}" if error.args else "missing entry"
    elif isinstance(error, MemoryError):
        text = "out of memory" + (f": {error}" if str(error) else "")
    else:
        text = str(error) or type(error).__name__
    return " ".join(_without_unsafe_advice(_ANSI.sub("", text)).split())


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="art-seg",
        description="Adversarial robustness of segmentation networks (3D medical first), on IBM's ART. "
        "Start with 'art-seg demo'.",
        epilog="Exit status: 0 done; 1 the run failed (one line on stderr names the file and the problem); 2 a usage "
        "error (a command-line value); 130 interrupted (run the same command again to resume).",
    )
    parser.add_argument("--version", action="version", version=f"art-seg {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for module in (demo, train, attack, evaluate, benchmark):
        module.add_parser(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run ``art-seg``; return its exit status (see the module docstring)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    prefix = f"art-seg {args.command}: "
    try:
        args.run(args)
    except CommandError as error:
        print(prefix + "error: " + error_line(error), file=sys.stderr)
        return 2
    except FAILURES as error:
        print(prefix + "error: " + error_line(error, getattr(args, "output", None)), file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(prefix + "interrupted; run the same command again to resume", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
