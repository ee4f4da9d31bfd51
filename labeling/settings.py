"""One typed settings object, read from ``juryflow.yaml`` and ``JURYFLOW__...`` variables.

Precedence (highest first): keyword arguments, environment variables, the YAML file,
the defaults below. The YAML file is ``$JURYFLOW_CONFIG`` or ``./juryflow.yaml``.
Example: ``JURYFLOW__ROUTING__HIGH=0.9`` sets ``routing.high``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict, YamlConfigSettingsSource

if TYPE_CHECKING:
    from labeling.audit_design import AuditDesign

PACKAGE_ROOT = Path(__file__).resolve().parent
DEFAULT_CONSTITUTION = PACKAGE_ROOT / "constitutions" / "default.yaml"


class _Section(BaseModel):
    # A misspelt key is an error, not a silently ignored setting.
    model_config = ConfigDict(extra="forbid")


class RoutingSettings(_Section):
    high: float = Field(0.8, gt=0.5, le=1.0, description="AI-labeler confidence at or above which the judge alone decides")
    low: float = Field(0.65, ge=0.5, le=1.0, description="confidence below which the sample goes to humans only")
    audit_rate: float = Field(0.05, ge=0.0, le=1.0, description="share of judge-accepted samples also sent to humans")
    # Focused audits (labeling/audit_design.py): audit more where a threshold can be certified.
    audit_focus_above: float | None = Field(
        None, gt=0.5, le=1.0, description="labeler confidence at or above which samples are audited at audit_focus_rate"
    )
    audit_focus_rate: float | None = Field(None, ge=0.0, le=1.0, description="audit rate at or above audit_focus_above")
    # Guaranteed routing (docs/routing-guarantee.md): replaces `high` once calibrated.
    alpha: float = Field(0.28, gt=0.0, lt=1.0, description="tolerated disagreement with humans among auto-labels")
    delta: float = Field(0.1, gt=0.0, lt=1.0, description="allowed probability that the guarantee fails")
    min_calibration_size: int = Field(100, ge=10, description="audit labels needed before thresholds are trusted")
    calibration_method: Literal["temperature", "isotonic"] = "isotonic"

    @property
    def audit_design(self) -> AuditDesign:
        """The audit design these settings put in force (routing draws by it; recalibration thins to it)."""
        from labeling.audit_design import AuditDesign

        return AuditDesign(self.audit_rate, self.audit_focus_above, self.audit_focus_rate)

    @model_validator(mode="after")
    def _ordered(self) -> RoutingSettings:
        if (self.audit_focus_above is None) != (self.audit_focus_rate is None):
            raise ValueError(
                "routing.audit_focus_above and routing.audit_focus_rate go together: set both "
                "(e.g. audit_focus_above: 0.6, audit_focus_rate: 0.15) or neither for uniform audits"
            )
        if self.low > self.high:
            raise ValueError(
                f"routing.low ({self.low}) is above routing.high ({self.high}): "
                "set low <= high, e.g. JURYFLOW__ROUTING__LOW=0.6 JURYFLOW__ROUTING__HIGH=0.8"
            )
        return self


class LabelerSettings(_Section):
    backend: Literal["embedding", "reward_model"] = "embedding"
    # For `reward_model`: a Hugging Face sequence-classification directory with num_labels=1.
    # For `embedding`: the fitted preference head (`juryflow labeler fit` writes it).
    model_path: str | None = None
    batch_size: int = Field(64, ge=1, le=4096)


class JudgeSettings(_Section):
    backend: Literal["transformers", "vllm", "openai"] = "transformers"
    model_path: str | None = Field(
        None, description="HF model directory or name; unset in the demo = a tiny random placeholder model"
    )
    constitution_path: Path = DEFAULT_CONSTITUTION
    template_path: Path | None = Field(None, description="your own Jinja verdict template; default ships with juryflow")
    critique: bool = Field(False, description="write a critique per principle before the verdict")
    critique_escalated: bool = Field(
        False, description="also write critiques for the samples escalated to humans, to show reviewers"
    )
    principle_sample_k: int | None = Field(None, ge=1, description="judge against k random principles per sample")
    batch_size: int = Field(16, ge=1, le=4096)
    device: str = "auto"
    # OpenAI-compatible server (e.g. `vllm serve`), or several replicas of one model.
    base_url: str | tuple[str, ...] | None = Field(
        None, description="server URL, or a list (YAML list, JSON list or comma-separated) of replica URLs"
    )
    api_key: SecretStr | None = None
    max_concurrency: int = Field(8, ge=1, le=512, description="requests in flight per server")
    timeout_s: float = Field(60.0, gt=0)
    # In-process vLLM.
    tensor_parallel_size: int = Field(1, ge=1)
    gpu_memory_utilization: float = Field(0.85, gt=0.0, le=1.0)

    @field_validator("base_url", mode="before")
    @classmethod
    def _one_or_several_urls(cls, value: object) -> object:
        # One URL stays a string; several become a tuple (hashable: the judge cache keys on it).
        if isinstance(value, str):
            value = value.split(",")
        if not isinstance(value, (list, tuple)):
            return value
        urls = [str(url).strip() for url in value if str(url).strip()]
        for url in urls:
            if not url.startswith(("http://", "https://")):
                raise ValueError(f"judge.base_url entry {url!r} is not an http(s) URL: e.g. http://127.0.0.1:8000/v1")
        if len(set(urls)) != len(urls):
            raise ValueError(f"judge.base_url lists a server twice ({', '.join(urls)}): list each replica once")
        return None if not urls else urls[0] if len(urls) == 1 else tuple(urls)

    @property
    def base_urls(self) -> tuple[str, ...]:
        """The judge servers, one or several (empty when unset)."""
        if self.base_url is None:
            return ()
        return (self.base_url,) if isinstance(self.base_url, str) else self.base_url

    @model_validator(mode="after")
    def _backend_needs(self) -> JudgeSettings:
        if self.backend == "openai" and not self.base_url:
            raise ValueError(
                "judge.backend is 'openai' but judge.base_url is unset: "
                "set JURYFLOW__JUDGE__BASE_URL=http://127.0.0.1:8000/v1 (your `vllm serve` address)"
            )
        if self.backend == "vllm" and not self.model_path:
            raise ValueError("judge.backend is 'vllm' but judge.model_path is unset: set it to a model directory")
        if not Path(self.constitution_path).is_file():
            raise ValueError(
                f"judge.constitution_path {str(self.constitution_path)!r} does not exist: "
                f"point it at a YAML file of principles, or remove it to use {DEFAULT_CONSTITUTION}"
            )
        if self.template_path is not None and not Path(self.template_path).is_file():
            raise ValueError(f"judge.template_path {str(self.template_path)!r} does not exist")
        return self


class IngestSettings(_Section):
    max_chars: int = Field(20_000, ge=1, description="longest accepted prompt or response, in characters")
    batch_size: int = Field(2_000, ge=1, le=1_000_000, description="samples per Prefect task call")


class LabelStudioSettings(_Section):
    url: str | None = Field(None, description="e.g. http://127.0.0.1:8080; unset = `juryflow labelstudio up` manages one")
    api_key: SecretStr | None = None
    project_title: str = "juryflow"
    annotators_per_task: int = Field(1, ge=1, le=10)
    max_annotators_on_tie: int = Field(3, ge=1, le=20)
    port: int = Field(8080, ge=1, le=65535)
    show_ai_reference: bool = Field(
        False, description="show the labeler's and judge's answers as text on review tasks (never on audit tasks, "
                           "never pre-ticked); off: reviewers judge blind (README, 'Human review in Label Studio')")


class TrainingSettings(_Section):
    trigger_min_new_labels: int = Field(500, ge=1, description="merged labels since the last snapshot that trigger training")
    min_snapshot_size: int = Field(50, ge=2)
    gate_margin: float = Field(0.01, ge=0.0, le=1.0, description="accuracy a new reward model must add over the labeler")


class TaskRunnerSettings(_Section):
    """Where label_batch's chunk tasks run (tasks/runners.py builds the Prefect task runner)."""

    # serial: one chunk at a time in the flow's process (SQLite has one writer anyway);
    # threads/dask/ray: `workers` chunks at once, which needs a PostgreSQL store_url to pay off.
    kind: Literal["serial", "threads", "dask", "ray"] = "serial"
    workers: int = Field(2, ge=1, le=1024, description="threads, or worker processes of a local Dask/Ray cluster")
    address: str | None = Field(
        None, description="a running cluster: Dask scheduler tcp://host:8786 or Ray ray://host:10001; unset = start one"
    )
    cluster_options: dict[str, Any] = Field(
        default_factory=dict,
        description="extra keyword arguments for the local cluster: distributed.LocalCluster (dask) or ray.init (ray)",
    )

    @model_validator(mode="after")
    def _cluster_needs(self) -> TaskRunnerSettings:
        if self.kind in ("serial", "threads") and (self.address or self.cluster_options):
            raise ValueError(
                f"task_runner.address/cluster_options are set but task_runner.kind is {self.kind!r}: "
                "set kind to dask or ray, or remove them"
            )
        if self.address and self.cluster_options:
            raise ValueError(
                f"task_runner.address ({self.address}) and cluster_options both set: options only apply to a "
                "cluster juryflow starts; configure a running cluster where it runs, or unset address"
            )
        return self


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="JURYFLOW__",
        env_nested_delimiter="__",
        extra="forbid",
        yaml_file=None,
    )

    data_dir: Path = Path("juryflow-data")
    store_url: str | None = Field(None, description="SQLAlchemy URL; default sqlite:///<data_dir>/juryflow.db")
    campaign: str = Field("default", pattern=r"^[A-Za-z0-9_.-]{1,64}$")
    routing: RoutingSettings = RoutingSettings()
    labeler: LabelerSettings = LabelerSettings()
    judge: JudgeSettings = JudgeSettings()
    ingest: IngestSettings = IngestSettings()
    labelstudio: LabelStudioSettings = LabelStudioSettings()
    training: TrainingSettings = TrainingSettings()
    task_runner: TaskRunnerSettings = TaskRunnerSettings()

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        yaml_path = config_path()
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        if yaml_path.is_file():
            sources.append(YamlConfigSettingsSource(settings_cls, yaml_file=yaml_path))
        return tuple(sources)

    @property
    def resolved_store_url(self) -> str:
        if self.store_url:
            return self.store_url
        return f"sqlite:///{(self.data_dir / 'juryflow.db').resolve()}"


def config_path() -> Path:
    return Path(os.environ.get("JURYFLOW_CONFIG", "juryflow.yaml"))


class SettingsError(ValueError):
    """Settings failed validation; the message lists each problem and its fix."""


def load_settings(**overrides: object) -> Settings:
    """Load and validate settings, turning pydantic's errors into one readable message."""
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        lines = [f"invalid juryflow settings (file: {config_path()}, env prefix JURYFLOW__):"]
        for err in exc.errors():
            loc = ".".join(str(p) for p in err["loc"]) or "(root)"
            env = "JURYFLOW__" + "__".join(str(p).upper() for p in err["loc"])
            msg = err["msg"].removeprefix("Value error, ")
            lines.append(f"  - {loc}: {msg} (set it in the YAML file or as {env})")
        raise SettingsError("\n".join(lines)) from None
