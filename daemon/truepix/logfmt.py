"""Log lines that stay one line: control characters in file names and errors are escaped."""

from __future__ import annotations

import logging

# C0 and C1 controls, DEL and the Unicode line separators: a file name or an error that holds one must not
# break a log line in two (or forge a second one).
_ESCAPES = {c: f"\\x{c:02x}" for c in (*range(0x20), *range(0x7f, 0xa0))}
_ESCAPES.update({ord("\n"): "\\n", ord("\r"): "\\r", ord("\t"): "\\t", 0x2028: "\\u2028", 0x2029: "\\u2029"})


def one_line(text: str) -> str:
    """``text`` with its control characters written as escapes (``\\n``, ``\\x1b`` ...): always one line."""
    return text.translate(_ESCAPES)


class OneLineFormatter(logging.Formatter):
    """Every message is one line, whatever file names and errors it holds (a traceback still follows
    on its own lines)."""

    def formatMessage(self, record: logging.LogRecord) -> str:
        message = record.message
        record.message = one_line(message)
        try:
            return super().formatMessage(record)
        finally:
            record.message = message  # other handlers see the record as it was
