"""No full phone number or email address in the HTTP access log.

uvicorn's access log writes each request line with its query string, and some queries
name a citizen: `GET /api/v1/messages?phone=…&email=…`, a search `?q=0912…`. A value
holding an `@` or seven digits or more (Persian and Arabic-Indic digits too) is written
shortened by `parsers.addresses.mask`, as every other log line of the gateway writes an
address; the path and the other values stay as they are.
"""

from __future__ import annotations

import logging
import re
from urllib.parse import quote, unquote_plus

from parsers.addresses import mask
from parsers.normalize import fold_digits

# Where access lines are written: the gateway's own (`gateway.access_log`, what `citygate
# serve` runs) and uvicorn's (an app served by plain `uvicorn`).
ACCESS_LOGGERS = ("citygate.access", "uvicorn.access")
_SENSITIVE = re.compile(r"@|\d(?:[^\d&=]{0,3}\d){6}")


def mask_query(query: str) -> str:
    """The query string with every value (or bare word) that may name a citizen masked.

    >>> mask_query("phone=%2B989121234567&email=ali.rezaei%40example.org&limit=50")
    'phone=%2B98912*****67&email=al***%40example.org&limit=50'
    >>> mask_query("q=%DB%B0%DB%B9%DB%B1%DB%B2%DB%B1%DB%B2%DB%B3%DB%B4%DB%B5%DB%B6%DB%B7")
    'q=091212***67'
    """
    parts = []
    for part in query.split("&"):
        name, sep, value = part.partition("=")
        parts.append(f"{_masked(name)}{sep}{_masked(value)}")
    return "&".join(parts)


def _masked(encoded: str) -> str:
    plain = fold_digits(unquote_plus(encoded)).strip()
    if not _SENSITIVE.search(plain):
        return encoded
    return quote(mask(plain), safe="*")


class AccessLogMask(logging.Filter):
    """Masks the query string of access records (their third argument is the
    path with the query: `'%s - "%s %s HTTP/%s" %d'`)."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if isinstance(args, tuple) and len(args) >= 3 and isinstance(args[2], str):
            path, sep, query = args[2].partition("?")
            if sep:
                record.args = (*args[:2], f"{path}?{mask_query(query)}", *args[3:])
        return True


def install_access_log_mask() -> None:
    """Put the mask on the access loggers (once: calling again changes nothing).
    A logger's filters survive uvicorn's own logging set-up, which runs before or after."""
    for name in ACCESS_LOGGERS:
        logger = logging.getLogger(name)
        if not any(isinstance(f, AccessLogMask) for f in logger.filters):
            logger.addFilter(AccessLogMask())
