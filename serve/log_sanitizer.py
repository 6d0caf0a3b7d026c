"""Every log record of the process, made safe to write: request-derived text cannot forge log lines and
credentials never reach a log file.

Escaped: C0 controls (CR, LF and NUL included), DEL, C1 controls, the Unicode line/paragraph separators and
the bidi controls, written as ``\\n``, ``\\x1b``, ``\\u202e``. Redacted: values of ``token=``,
``access_token=``, ``api_key=``, ``password``, ``Authorization`` / ``X-API-Key`` (as query parameters,
headers, JSON or repr'd dicts), and bare JWTs and wdp API keys wherever they appear.

Installed as the logging *record factory* (``install_log_sanitizer``, called by the app factory) rather than
as a handler filter: a factory sees every record of every logger, whatever handlers uvicorn, Litestar or a
``--log-config`` adds before or after the app is built (uvicorn's access and error loggers included). The
message template and each argument are cleaned separately so formatters that read ``record.args``
(uvicorn's access formatter does) keep working. A traceback keeps its own line breaks; only the exception
messages and notes inside it (where input ends up: ``FileNotFoundError: '/x\\nINFO ...'``) are escaped.
"""

from __future__ import annotations

import logging
import numbers
import re
import traceback
from collections.abc import Callable, Mapping
from typing import Any

REDACTED = "[REDACTED]"

_BIDI = (0x061C, 0x200E, 0x200F, *range(0x202A, 0x202F), *range(0x2066, 0x206A))
_NAMED = {0x09: "\\t", 0x0A: "\\n", 0x0D: "\\r"}


def _escape_table(*, keep_newline: bool) -> dict[int, str]:
    table: dict[int, str] = {}
    for code in (*range(0x20), 0x7F, *range(0x80, 0xA0), 0x2028, 0x2029, *_BIDI):
        table[code] = _NAMED.get(code) or (f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}")
    if keep_newline:
        del table[0x0A]
    return table


_ESCAPE = _escape_table(keep_newline=False)
_ESCAPE_KEEP_LF = _escape_table(keep_newline=True)

# name [quote] (= or :) [quote] [scheme] value: query strings, header lines, JSON and repr'd dicts
_SECRET_FIELD = re.compile(
    r"(?i)(?<![A-Za-z0-9])"
    r"((?:access_|refresh_|id_)?token|api[_-]?key|x-api-key|password|passwd|client_secret|secret"
    r"|authorization|proxy-authorization|cookie|set-cookie)"
    r"""(["']?\s*[:=]\s*["']?)"""
    r"((?:bearer|basic|token)\s+)?"
    r"""([^\s"'&,;)}\]]+)"""
)
_JWT = re.compile(r"\beyJ[A-Za-z0-9_-]{2,}\.[A-Za-z0-9_-]{2,}\.[A-Za-z0-9_-]*")
_API_KEY = re.compile(r"\b(wdp_[0-9a-f]{12}_)[A-Za-z0-9_-]+")


def redact(text: str) -> str:
    """``text`` with credential values replaced by ``[REDACTED]`` (an API key keeps its public id)."""
    if not text:
        return text
    text = _SECRET_FIELD.sub(lambda m: f"{m[1]}{m[2]}{m[3] or ''}{REDACTED}", text)
    text = _JWT.sub(REDACTED, text)
    return _API_KEY.sub(lambda m: m[1] + REDACTED, text)


def escape_controls(text: str, *, keep_newline: bool = False) -> str:
    return text.translate(_ESCAPE_KEEP_LF if keep_newline else _ESCAPE)


def clean(text: str) -> str:
    """One log-safe line: credentials redacted, control and bidi characters escaped."""
    return escape_controls(redact(text))


def _clean_arg(value: Any) -> Any:
    if isinstance(value, str):
        return clean(value)
    if value is None or isinstance(value, numbers.Number):  # numpy scalars too: %d/%.3f keep working
        return value
    # Anything else (URL objects, exceptions, dicts of headers) stays itself when its text is already safe
    # (so %r and custom formatting work); otherwise it is replaced by its cleaned text.
    try:
        text = str(value)
    except Exception:  # a broken __str__ is logging's problem to report, not ours
        return value
    cleaned = clean(text)
    return value if cleaned == text else cleaned


def _chain(exc: BaseException | None) -> list[BaseException]:
    seen: list[BaseException] = []
    stack = [exc]
    while stack:
        e = stack.pop()
        if e is None or any(e is s for s in seen):
            continue
        seen.append(e)
        stack += [e.__cause__, e.__context__, *getattr(e, "exceptions", ())]
    return seen


def clean_traceback(exc_info: Any) -> str:
    """The formatted traceback with every exception message (and note) cleaned; its own newlines stay."""
    text = "".join(traceback.format_exception(*exc_info)).rstrip("\n")
    for exc in _chain(exc_info[1]):
        parts = [str(exc), *(n for n in getattr(exc, "__notes__", ()) or () if isinstance(n, str))]
        for part in parts:
            if part and clean(part) != part:
                text = text.replace(part, clean(part))
    return escape_controls(redact(text), keep_newline=True)


def sanitize_record(record: logging.LogRecord) -> logging.LogRecord:
    """Clean ``record`` in place (message template, arguments, exception text) and return it."""
    msg = record.msg if isinstance(record.msg, str) else str(record.msg)
    record.msg = clean(msg)
    args = record.args
    if isinstance(args, Mapping):
        record.args = {k: _clean_arg(v) for k, v in args.items()}
    elif isinstance(args, tuple):
        record.args = tuple(_clean_arg(a) for a in args)
    if record.exc_info and record.exc_info[1] is not None and not record.exc_text:
        record.exc_text = clean_traceback(record.exc_info)
    if record.stack_info:
        record.stack_info = escape_controls(redact(record.stack_info), keep_newline=True)
    return record


class _SanitizingFactory:
    def __init__(self, inner: Callable[..., logging.LogRecord]) -> None:
        self.inner = inner

    def __call__(self, *args: Any, **kwargs: Any) -> logging.LogRecord:
        return sanitize_record(self.inner(*args, **kwargs))


def install_log_sanitizer() -> None:
    """Make every log record of this process safe (idempotent; wraps whatever factory is installed)."""
    current = logging.getLogRecordFactory()
    if not isinstance(current, _SanitizingFactory):
        logging.setLogRecordFactory(_SanitizingFactory(current))
