"""juryflow: hybrid human/AI preference labeling for RLHF, as Prefect flows."""

__version__ = "0.1.0"
