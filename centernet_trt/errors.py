"""One error type for mistakes a user can fix, and the CLI wrapper that prints it as one line."""
from __future__ import annotations

import functools
import sys


class UserError(Exception):
    """A problem with the user's input or environment; the message names the fix."""


def cli(func):
    """Wrap a ``main(argv=None)`` so a UserError prints ``error: ...`` on one line and exits 2."""

    @functools.wraps(func)
    def wrapper(argv=None):
        try:
            return func(argv)
        except UserError as exc:
            print(f"error: {exc}", file=sys.stderr)
            raise SystemExit(2) from None
        except KeyboardInterrupt:
            print("error: interrupted", file=sys.stderr)
            raise SystemExit(130) from None

    return wrapper
