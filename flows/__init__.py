"""The Prefect flows. Run one with ``python -m flows.<name>`` (``--help`` for its arguments).

Prefect reads these at import time: give the ephemeral API time to start on small machines
(14-20 s cold here, much longer on a loaded one) and keep analytics off. Users' own values win.
``juryflow`` (the console command) imports this package first for the same defaults.
"""

import os

os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "90")
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
