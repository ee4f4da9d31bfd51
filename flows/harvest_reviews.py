"""Human review round trip: push new human_pending samples to Label Studio, harvest annotations,
resolve them into labels, reconcile Label Studio with the store (artifact `labelstudio-reconcile`),
publish agreement figures. Schedule it every few minutes:

    python -m flows.harvest_reviews          # or: prefect deploy, with a cron/interval schedule
"""

from __future__ import annotations

from prefect import flow, get_run_logger

from flows._main import parser_for, run_main
from flows.summaries import harvest_line

from tasks.review import ensure_project, harvest, publish_agreement, publish_reconcile, push_pending


@flow(name="harvest-reviews")
def harvest_reviews(retry_delay_seconds: list[float] | None = None, reconcile: bool = True) -> dict:
    """``retry_delay_seconds`` overrides the tasks' backoff (tests use short delays). ``reconcile``: walk the
    whole project (about 4 ms a task on a busy 2-core machine, so minutes at 50k tasks); a deployment on a
    short schedule over a big project can turn it off and run `juryflow labelstudio reconcile` nightly."""
    opts = {"retry_delay_seconds": retry_delay_seconds} if retry_delay_seconds is not None else {}
    project_id = ensure_project.with_options(**opts)()
    pushed = push_pending.with_options(**opts)(project_id)
    harvested = harvest.with_options(**opts)(project_id)
    reconciled = publish_reconcile.with_options(**opts)(project_id) if reconcile else None
    agreement = publish_agreement()
    result = {"project_id": project_id, "pushed": pushed, "harvested": harvested, "reconcile": reconciled,
              "agreement": agreement}
    get_run_logger().info(harvest_line(result))
    return result


def main(argv: list[str] | None = None) -> None:
    def start(args):
        from juryflow.preflight import check_labelstudio_configured
        from labeling.settings import load_settings

        check_labelstudio_configured(load_settings())
        result = harvest_reviews()
        return result, harvest_line(result)

    run_main(parser_for(__doc__, "python -m flows.harvest_reviews"), start, argv)


if __name__ == "__main__":
    main()
