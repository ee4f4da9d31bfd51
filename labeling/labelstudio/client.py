"""Small helpers over the Label Studio SDK 2.x: connect, find-or-create the campaign project, list tasks.

Errors raised from here name the server URL and never the API token. (The SDK's own ``ApiError``
text includes the response headers, which carry a session cookie, so we never re-raise its text.)
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import TYPE_CHECKING, Any

import httpx

from labeling.labelstudio.reference import config_with_reference
from labeling.settings import Settings

# The SDK is imported where it is first used: it costs ~3 s of imports, which every flow module and
# `--help` paid at start-up although most runs never talk to Label Studio.
if TYPE_CHECKING:
    from label_studio_sdk.label_interface import LabelInterface

# Data Manager filters read datetimes in this form.
LS_TIME_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"
# Annotators judge blind (issue 11): a prediction would pre-tick the machine's answer and show it as a
# tab, and audit labels are the routing guarantee's calibration set. Set on every project we create,
# and re-applied to ones made before we pushed without predictions.
BLIND_PROJECT_SETTINGS: dict[str, Any] = {
    "show_collab_predictions": False,  # no prediction tabs, no pre-filled annotation
    "evaluate_predictions_automatically": False,  # never ask an ML backend for one when a task opens
    "reveal_preannotations_interactively": False,
    "show_annotation_history": False,
    "model_version": "",  # no prediction set selected as the pre-fill source
}


class LabelStudioUnavailable(RuntimeError):
    """The Label Studio server failed or could not be reached (retryable)."""


class LabelStudioRequestError(RuntimeError):
    """Label Studio refused a request (4xx): retrying will not help."""


def label_config(show_ai_reference: bool = False) -> str:
    """config.xml; with ``show_ai_reference``, plus the text block review tasks show it in (reference.py)."""
    blind = resources.files("labeling.labelstudio").joinpath("config.xml").read_text()
    return config_with_reference(blind) if show_ai_reference else blind


@dataclass(frozen=True)
class ReviewControls:
    """The names in config.xml that annotation results must use, read by the SDK's LabelInterface."""

    interface: LabelInterface
    preference: str  # the single-choice control: A, B or tie
    reason: str  # the optional free-text reason
    to_name: str  # the object both controls attach to
    choices: tuple[str, ...]


@cache
def review_controls() -> ReviewControls:
    from label_studio_sdk.label_interface import LabelInterface
    from label_studio_sdk.label_interface.control_tags import ChoicesTag, TextAreaTag

    interface = LabelInterface(label_config())
    choices = [c for c in interface.controls if isinstance(c, ChoicesTag)]
    texts = [c for c in interface.controls if isinstance(c, TextAreaTag)]
    if len(choices) != 1 or len(texts) != 1 or choices[0].attr.get("choice") != "single":
        raise ValueError("labeling/labelstudio/config.xml must hold one single-choice <Choices> and one <TextArea>; "
                         f"it has {len(choices)} and {len(texts)}: restore the shipped config")
    preference, reason = choices[0], texts[0]
    return ReviewControls(interface=interface, preference=preference.name, reason=reason.name,
                          to_name=preference.to_name[0], choices=tuple(preference.labels))


def project_title(settings: Settings) -> str:
    # Label Studio wants 3+ characters; the campaign name keeps campaigns apart on one server.
    return f"{settings.labelstudio.project_title} / {settings.campaign}"


def filter_query(*items: dict[str, Any]) -> str:
    """The ``query`` parameter of /api/tasks: Data Manager filters, ANDed."""
    return json.dumps({"filters": {"conjunction": "and", "items": list(items)}})


class LabelStudioClient:
    """A connection to one Label Studio server, with errors that name the URL (never the token)."""

    def __init__(self, url: str, token: str, timeout_s: float = 60.0):
        from label_studio_sdk import LabelStudio

        self.url = url.rstrip("/")
        # max_retries=0: the SDK's own hidden retries would stack under the Prefect task retries.
        self.sdk = LabelStudio(base_url=self.url, api_key=token, timeout=timeout_s, max_retries=0)
        # Plain JSON calls carry Label Studio's legacy-token header themselves (the token `labelstudio up` makes).
        self._http = httpx.Client(base_url=self.url, timeout=timeout_s, headers={"Authorization": f"Token {token}"})

    @classmethod
    def from_settings(cls, settings: Settings) -> LabelStudioClient:
        ls = settings.labelstudio
        if not ls.url or ls.api_key is None:
            raise LabelStudioRequestError(
                "labelstudio.url or labelstudio.api_key is unset: run `juryflow labelstudio up` "
                "(it writes both into juryflow.yaml), or set JURYFLOW__LABELSTUDIO__URL and JURYFLOW__LABELSTUDIO__API_KEY"
            )
        return cls(ls.url, ls.api_key.get_secret_value())

    def call(self, what: str, fn, *args: Any, **kwargs: Any) -> Any:
        """Run one SDK call, turning its failures into our two error kinds."""
        from label_studio_sdk.core.api_error import ApiError

        try:
            return fn(*args, **kwargs)
        except ApiError as exc:
            detail = exc.body if isinstance(exc.body, (dict, str)) else None
            if isinstance(detail, dict):
                detail = detail.get("validation_errors") or detail.get("detail") or detail
            message = f"Label Studio at {self.url}: {what} failed with HTTP {exc.status_code}: {detail}"
            if exc.status_code is None or exc.status_code >= 500 or exc.status_code == 429:
                raise LabelStudioUnavailable(message) from None
            if exc.status_code in (401, 403):
                message += " (check labelstudio.api_key: the token was refused)"
            raise LabelStudioRequestError(message) from None
        except httpx.HTTPError as exc:
            raise self._unreachable(what, exc) from None

    def list_json(self, what: str, path: str, params: dict[str, Any], key: str, page_size: int = 1000) -> Iterator[dict]:
        """Page through a list endpoint as plain JSON.

        The SDK turns each task into a pydantic model, which costs seconds per thousand tasks; the
        harvest only needs a few fields, so it reads plain JSON.
        """
        page = 1
        while True:
            response = self._send(what, "GET", path, params={**params, "page": page, "page_size": page_size})
            if response.status_code == 404 and page > 1:
                return  # past the last page
            self._check(what, response)
            items = response.json()[key]
            yield from items
            if len(items) < page_size:
                return
            page += 1

    def get_json(self, what: str, path: str, params: dict[str, Any]) -> Any:
        """GET plain JSON: one page of a list endpoint, for callers that page themselves (reconcile's keyset)."""
        response = self._send(what, "GET", path, params=params)
        self._check(what, response)
        return response.json()

    def post_json(self, what: str, path: str, body: Any, params: dict[str, Any] | None = None) -> Any:
        """POST plain JSON (the SDK's encoder walks every value of a bulk import in Python: ~0.25 s per 1,000 tasks)."""
        response = self._send(what, "POST", path, params=params, json=body)
        self._check(what, response)
        return response.json()

    def _send(self, what: str, method: str, path: str, **request: Any) -> httpx.Response:
        """One plain HTTP request; a transport failure (server down, refused, timed out) is LabelStudioUnavailable."""
        try:
            return self._http.request(method, path, **request)
        except httpx.HTTPError as exc:
            raise self._unreachable(what, exc) from None

    def _unreachable(self, what: str, exc: httpx.HTTPError) -> LabelStudioUnavailable:
        return LabelStudioUnavailable(f"Label Studio at {self.url}: {what} failed: {type(exc).__name__}: {exc}. "
                                      "Is the server running? (`juryflow labelstudio status`)")

    def _check(self, what: str, response: httpx.Response) -> None:
        if response.status_code >= 500 or response.status_code == 429:
            raise LabelStudioUnavailable(f"Label Studio at {self.url}: {what} failed with HTTP {response.status_code}")
        if response.status_code >= 400:
            raise LabelStudioRequestError(
                f"Label Studio at {self.url}: {what} failed with HTTP {response.status_code}: {response.text[:300]}"
            )

    def ensure_project(self, title: str, annotators_per_task: int, show_ai_reference: bool = False) -> int:
        """The id of the project with this title, created with our labeling config when missing.

        Either way the project shows no predictions (BLIND_PROJECT_SETTINGS), and its labeling config has
        the AI reference block exactly when ``show_ai_reference`` is on (labeling/labelstudio/reference.py).
        """
        wanted = label_config(show_ai_reference)
        project = self._project_titled(title)
        if project is not None:
            self._bring_up_to_date(int(project.id), project, wanted)
            return int(project.id)
        project = self.call(
            f"creating project {title!r}",
            self.sdk.projects.create,
            title=title,
            description="juryflow pairwise preference review",
            label_config=wanted,
            maximum_annotations=annotators_per_task,
            overlap_cohort_percentage=100,
            show_skip_button=True,
            **BLIND_PROJECT_SETTINGS,
        )
        return int(project.id)

    def find_project(self, title: str) -> int | None:
        """The id of the project with this title, or None (creates nothing)."""
        project = self._project_titled(title)
        return None if project is None else int(project.id)

    def _project_titled(self, title: str) -> Any:
        for project in self.call("listing projects", lambda: list(self.sdk.projects.list(title=title))):
            if project.title == title:
                return project
        return None

    def _bring_up_to_date(self, project_id: int, project: Any, config: str) -> None:
        """An existing project gets the labeling config wanted now, and predictions hidden and deleted if it
        was made before juryflow pushed blind tasks; one update, none when nothing changed."""
        shows_predictions = any(getattr(project, k, None) not in (v, None) for k, v in BLIND_PROJECT_SETTINGS.items())
        changes = dict(BLIND_PROJECT_SETTINGS) if shows_predictions else {}
        if shows_predictions or (project.label_config or "").strip() != config.strip():
            changes["label_config"] = config
        if not changes:
            return
        self.call(f"updating the settings of project {project_id}", self.sdk.projects.update, project_id, **changes)
        if shows_predictions:
            # Tasks pushed by older versions carry the labeler's and judge's answers; our store keeps them.
            self.post_json(f"deleting the predictions of project {project_id}", "/api/dm/actions",
                           {"selectedItems": {"all": True, "excluded": []}},
                           params={"id": "delete_tasks_predictions", "project": project_id})

    def reopen_task(self, task_id: int, overlap: int) -> None:
        """Put a task back in the queue until ``overlap`` annotators have answered it."""
        # Patching overlap alone leaves is_labeled set, and Label Studio's queue skips labeled tasks.
        self.call(f"raising the overlap of task {task_id} to {overlap}", self.sdk.tasks.update, str(task_id),
                  overlap=overlap, is_labeled=False)

    def tasks(self, project_id: int, filters: list[dict], fields: str = "all", page_size: int = 1000,
              include: str | None = None) -> Iterator[Any]:
        """Tasks of a project matching Data Manager filters (ANDed), page by page."""
        query = filter_query(*filters)
        pages = self.call(
            "listing tasks",
            self.sdk.tasks.list,
            project=project_id,
            query=query,
            fields=fields,
            include=include,
            page_size=page_size,
        )
        iterator = iter(pages)
        while True:
            item = self.call("listing tasks", next, iterator, None)
            if item is None:
                return
            yield item

    def task_ids_by_sample(self, project_id: int, sample_ids: Sequence[str], chunk: int = 500) -> dict[str, int]:
        """Tasks already in the project for these samples (Label Studio does not deduplicate imports)."""
        found: dict[str, int] = {}
        for start in range(0, len(sample_ids), chunk):
            ids = list(sample_ids[start : start + chunk])
            flt = {"filter": "filter:tasks:data.sample_id", "operator": "in_list", "type": "String", "value": ids}
            params = {"project": project_id, "fields": "task_only", "include": "id,data",
                      "query": filter_query(flt)}
            for task in self.list_json(f"looking up sample_ids in project {project_id}", "/api/tasks", params, "tasks"):
                # The lowest id wins if a duplicate ever slipped in, so the answer is stable.
                sid, tid = task["data"].get("sample_id"), int(task["id"])
                if sid is not None and (sid not in found or tid < found[sid]):
                    found[sid] = tid
        return found


def choice_result(choice: str) -> dict[str, Any]:
    names = review_controls()
    return {"from_name": names.preference, "to_name": names.to_name, "type": "choices", "value": {"choices": [choice]}}


def reason_result(text: str) -> dict[str, Any]:
    names = review_controls()
    return {"from_name": names.reason, "to_name": names.to_name, "type": "textarea", "value": {"text": [text]}}
