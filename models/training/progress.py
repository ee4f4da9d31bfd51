"""Trainer progress as juryflow's own log lines, through whatever logger the caller passes.

transformers prints each ``logs`` dict to stdout (PrinterCallback); the training tasks keep prints
out of the run log (datasets' fingerprinting makes dill print whole disassemblies), so progress
reaches the Prefect run log only through this callback: one line per logging step.
"""

from __future__ import annotations

import logging

from transformers import TrainerCallback


class LogProgress(TrainerCallback):
    def __init__(self, log: logging.Logger | logging.LoggerAdapter) -> None:
        self.log = log

    def on_log(self, args, state, control, logs=None, **kwargs):  # noqa: ANN001 - TrainerCallback's signature
        numbers = " ".join(f"{k}={v:.4g}" for k, v in (logs or {}).items() if isinstance(v, int | float))
        self.log.info("step %d/%d: %s", state.global_step, state.max_steps, numbers)
