"""User errors end a run with exit status 2 and one line; everything else is a bug."""
import functools
import sys


class UserError(Exception):
    """Bad config, missing input, or too many bad rows: reported in one line, exit 2."""


def entry_point(fn):
    """Wrap a script's main(): a UserError prints one line and exits 2."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except UserError as e:
            print(f"error: {e}", file=sys.stderr)
            sys.exit(2)

    return wrapper
