"""A local Ray for label_batch's chunk tasks that survives a slow start (imported only for kind ``ray``)."""

from __future__ import annotations

from typing import Any

import ray
from prefect_ray import RayTaskRunner

__all__ = ["LocalRayTaskRunner", "RayTaskRunner", "start_local_ray"]

RAY_START_ATTEMPTS = 3


def start_local_ray(init_kwargs: dict[str, Any], attempts: int = RAY_START_ATTEMPTS) -> None:
    """``ray.init(**init_kwargs)``, tried again when the new node misses Ray's registration deadline.

    Ray gives a starting raylet a fixed 30 s to register with its GCS (ray/_private/node.py, not a
    setting), which a loaded machine can miss; a fresh start then succeeds. Other errors are raised.
    """
    for attempt in range(1, attempts + 1):
        try:
            ray.init(**init_kwargs)
            return
        except Exception as exc:
            if "timed out during startup" not in str(exc) or attempt == attempts:
                raise
            ray.shutdown()


class LocalRayTaskRunner(RayTaskRunner):
    """RayTaskRunner whose local Ray is started by start_local_ray and stopped when the run ends.

    RayTaskRunner joins a Ray that is already initialized and leaves it running, so the one
    started here is shut down here.
    """

    def __enter__(self) -> LocalRayTaskRunner:
        self._started_local_ray = not ray.is_initialized()
        if self._started_local_ray:
            start_local_ray(self.init_kwargs)
        super().__enter__()
        return self

    def __exit__(self, *exc_info: Any) -> None:
        try:
            super().__exit__(*exc_info)
        finally:
            if getattr(self, "_started_local_ray", False):
                ray.shutdown()
