"""The base class of every error the project raises on purpose."""

from __future__ import annotations


class HarnessError(Exception):
    """Base class of every error the harness raises on purpose (bad input, bad config, bad file).

    The CLI prints these as one located line and exits 2; anything else is a bug and keeps its traceback.
    """
