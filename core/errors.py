"""The base class of every error the project raises on purpose."""

from __future__ import annotations


class HarnessError(Exception):
    """Base class of every error the harness raises on purpose (bad input, bad config, bad file).

    The CLI prints these as one located line and exits 2; anything else is a bug and keeps its traceback.
    """


def shorten(text: str, limit: int = 60) -> str:
    """`text` cut to `limit` characters with the count of what was cut (so a 10 MB line never reaches a message).

    >>> shorten("a" * 1000, 10)
    'aaaaaaaaaa... (990 more characters)'
    """
    if len(text) <= limit:
        return text
    return f"{text[:limit]}... ({len(text) - limit} more characters)"


def printable(text: str) -> str:
    r"""`text` (a path, a name) with every character that is not printable escaped, the rest exactly as it is.

    A newline or a control character in a file name would otherwise break a message's one line, or be rewritten
    to a space by whatever prints it; escaped, the name can be copied back.

    >>> printable("bad\nname.mp4"), printable("café 1.mp4"), printable("a\x00\u2028b")
    ('bad\\nname.mp4', 'café 1.mp4', 'a\\x00\\u2028b')
    """
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii") for c in text)
