"""Our and the engines' `logging` records, into Triton's log (inside the Python-backend stub)."""

from __future__ import annotations

import logging

import triton_python_backend_utils as pb_utils  # only exists inside the stub

logger = logging.getLogger("triton_llm")


class _TritonLogHandler(logging.Handler):
    """Route our and the engines' `logging` records to Triton's log."""

    def emit(self, record: logging.LogRecord) -> None:
        msg = self.format(record)
        if record.levelno >= logging.ERROR:
            pb_utils.Logger.log_error(msg)
        elif record.levelno >= logging.WARNING:
            pb_utils.Logger.log_warn(msg)
        else:
            pb_utils.Logger.log_info(msg)


def route_logs_to_triton() -> None:
    if not logger.handlers:
        logger.addHandler(_TritonLogHandler())
        logger.setLevel(logging.INFO)
