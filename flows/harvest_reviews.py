"""Human review round trip: push new human_pending samples to Label Studio, harvest annotations,
resolve them into labels, publish agreement figures. Schedule it every few minutes:

    python -m flows.harvest_reviews          # or: prefect deploy, with a cron/interval schedule
"""

from __future__ import annotations

from prefect import flow

from tasks.review import ensure_project, harvest, publish_agreement, push_pending


@flow(name="harvest-reviews", log_prints=True)
def harvest_reviews(retry_delay_seconds: list[float] | None = None) -> dict:
    """``retry_delay_seconds`` overrides the tasks' backoff (tests use short delays)."""
    opts = {"retry_delay_seconds": retry_delay_seconds} if retry_delay_seconds is not None else {}
    project_id = ensure_project.with_options(**opts)()
    pushed = push_pending.with_options(**opts)(project_id)
    harvested = harvest.with_options(**opts)(project_id)
    agreement = publish_agreement()
    return {"project_id": project_id, "pushed": pushed, "harvested": harvested, "agreement": agreement}


if __name__ == "__main__":
    harvest_reviews()
