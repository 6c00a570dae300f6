"""Starting a local Ray node on a busy machine.

Ray waits a fixed 30 s for a new raylet to register with its GCS and then gives up. On
two cores shared with a running vLLM engine or a training job, a raylet has missed that
window once (the CI's vLLM restart test), though it starts fine a moment later. A local
start therefore gets a second try after the half-started node is shut down; any other
error, and a second timeout, are raised as they are.
"""

from __future__ import annotations

import logging

import ray

_STARTUP_TIMEOUT = "timed out during startup"
log = logging.getLogger(__name__)


def init_local_ray(attempts: int = 2, **kwargs) -> None:
    """``ray.init(**kwargs)`` for a node this process starts, retried when it times out starting."""
    for attempt in range(1, attempts + 1):
        try:
            ray.init(**kwargs)
            return
        except Exception as error:  # Ray raises a bare Exception for this
            if _STARTUP_TIMEOUT not in str(error) or attempt == attempts:
                raise
            log.warning("the local Ray node timed out starting (attempt %d of %d); starting it again", attempt, attempts)
            ray.shutdown()
