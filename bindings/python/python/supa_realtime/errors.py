"""Every :class:`RealtimeError` says what went wrong.

The generated exception classes (``RealtimeError.Timeout``, ``.Shutdown``, ...) carry their
fields but, for the variants without fields, no message at all. This module gives the common
base a ``__str__`` that always names the cause, lets the Python layer attach a message with
context (which call, which topic, what the connection last reported), and makes the timeouts
of this layer both ``RealtimeError.Timeout`` and ``asyncio.TimeoutError`` (so code that
catches the latter keeps working).
"""

from __future__ import annotations

import asyncio
from typing import Any, Dict, Type

from ._native import supa_realtime as _ffi

RealtimeError = _ffi.RealtimeError
"""Raised by failing calls; subclasses: ``RealtimeError.ChannelError`` (``.reason``, the
server's text, and ``.recoverable``), ``.Timeout``, ``.InvalidArgument``, ``.Shutdown``, ..."""

# The generated module binds the name RealtimeError to a namespace of variant classes; their
# common base (the real exception class) is the next class in each variant's MRO.
_Base: Type[Exception] = _ffi.RealtimeError.Timeout.__mro__[1]

# The text of each variant; {name} is the variant's field of that name.
_TEXT: Dict[str, str] = {
    "InvalidArgument": "invalid argument: {reason}",
    "NotConnected": "not connected: the call needs a connected socket or a joined channel",
    "Timeout": "timed out: no reply from the server in time",
    "ChannelError": "channel error: {reason}",
    "WouldDeadlock": "a blocking call on the dispatch thread would deadlock (inside callbacks "
    "use the *_nowait methods)",
    "Shutdown": "the client was shut down",
    "Http": "HTTP {status}: {body}",
    "Tls": "TLS error: {reason}",
    "Io": "I/O error: {reason}",
    "Callback": "callback failed: {reason}",
}


class _Fields:
    """An error's fields for ``str.format_map``; an empty one reads ``(no detail)``."""

    def __init__(self, error: Any):
        self._error = error

    def __getitem__(self, name: str) -> str:
        value = getattr(self._error, name, None)
        return str(value) if value not in (None, "") else "(no detail)"


def _str(self: Any) -> str:
    custom = getattr(self, "_message", None)
    if custom:
        return str(custom)
    kind = type(self).__name__
    if kind in _TEXT:
        return _TEXT[kind].format_map(_Fields(self))
    # A variant this layer does not know yet: its name and fields.
    fields = ", ".join(f"{k}={v!r}" for k, v in vars(self).items() if not k.startswith("_"))
    return f"{kind}: {fields}" if fields else kind


_Base.__str__ = _str  # type: ignore[method-assign]


class Timeout(RealtimeError.Timeout, asyncio.TimeoutError):  # type: ignore[misc, valid-type]
    """A timeout of this layer (e.g. ``subscribe`` past its deadline): a
    ``RealtimeError.Timeout`` that ``except asyncio.TimeoutError`` catches too (the built-in
    ``TimeoutError`` from Python 3.11)."""

    def __init__(self) -> None:
        pass


def with_message(error: Exception, message: str) -> Exception:
    """``error`` with ``message`` as its text (the fields stay as they were)."""
    error._message = message  # type: ignore[attr-defined]
    return error


def timeout(message: str) -> Exception:
    return with_message(Timeout(), message)


def shutdown(what: str) -> Exception:
    return with_message(RealtimeError.Shutdown(), f"{what}: the client was shut down")
