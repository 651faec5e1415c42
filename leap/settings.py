"""LEAP's one typed settings object, read from ``LEAP_*`` environment variables."""

from __future__ import annotations

from datetime import timedelta
from functools import cached_property
from pathlib import Path
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["Settings"]


class Settings(BaseSettings):
    """Every knob LEAP has; each field's env name is ``LEAP_`` + its upper-cased name."""

    model_config = SettingsConfigDict(env_prefix="LEAP_", frozen=True, extra="ignore")

    kafka_bootstrap: str = Field(
        "127.0.0.1:9092",
        description="Kafka bootstrap servers, comma-separated host:port.",
    )
    schema_registry_url: str | None = Field(
        None,
        description="Confluent-compatible schema registry. Unset: Avro single-object encoding.",
    )
    redis_url: str = Field("redis://127.0.0.1:6379/0", description="Redis holding indicator state.")
    redis_prefix: str = Field("leap:", description="Prefix of every Redis key LEAP writes.")

    # PostgreSQL: history and audit. Schema by `leap db upgrade`; `leap retention purge`
    # deletes rows past these periods (run it daily).
    postgres_dsn: str | None = Field(
        None,
        description="LEAP's own PostgreSQL (e.g. postgresql://leap@db/leap): daily indicator "
        "history and the staff-read audit log. Unset: no history is kept.",
    )
    # 400 days: a full academic year (365) plus the summer resit and progression boards, so
    # a student's history can be compared with the same point of the previous year until
    # those decisions are made; longer would profile a student past any use.
    history_retention_days: int = Field(
        400, ge=1, description="Days of indicator history kept (as_of before today - N goes)."
    )
    # 730 days: two academic years, so a student's complaint or subject access request
    # ("who looked at my data?") about last year can still be answered after the next
    # year's progression decisions; beyond that it only records staff behaviour.
    audit_retention_days: int = Field(
        730, ge=1, description="Days of the audit log of staff reads kept."
    )

    timezone: str = Field(
        "Europe/London", description="The institution's time zone: days are local days here."
    )
    clock: Literal["wall", "event"] = Field(
        "wall",
        description="wall: a day closes on the wall clock (live). event: when event time "
        "passes the day's end (replaying a term gives the same result as living it).",
    )
    day_close_grace: timedelta = Field(
        timedelta(hours=2),
        description="How long after local midnight a day stays open for late feeds.",
    )
    lateness_horizon_days: int = Field(
        7,
        ge=0,
        description="Days after a day closes that late events still amend it (and re-emit "
        "changed indicators); older events are dead-lettered as too_late.",
    )
    tick_interval: float = Field(
        30.0, description="Seconds between wall-clock ticks that close days (clock=wall)."
    )

    students: Path | None = Field(
        None,
        description="Reference data from a CSV file (student_id,course,year,mode,department,"
        "tutor_id[,status]) for development and tests; unset: follow the compacted topic "
        "that `leap reference load` publishes (production).",
    )
    policy: Path | None = Field(
        None, description="Scoring policy TOML; unset: the policy shipped with LEAP."
    )
    institution: Path | None = Field(
        None,
        description="Institution TOML (cohorts in scope, exempt statuses, windows, alert "
        "days, holidays); unset: the pilot configuration shipped with LEAP.",
    )

    app_id: str = Field("leap", description="Faust application id (consumer group).")
    activity_topic: str = "leap.activity"
    dead_letter_topic: str = "leap.dead-letter"
    indicator_changes_topic: str = "leap.indicator-changes"
    cohort_scores_topic: str = "leap.cohort-scores"
    reference_students_topic: str = "leap.reference.students"
    contact_preferences_topic: str = "leap.reference.contact-preferences"
    alerts_topic: str = "leap.alerts"
    partitions: int = Field(8, ge=1, description="Partitions of leap.activity (and tables).")
    replication_factor: int = Field(1, ge=1, description="Replication of topics LEAP creates.")

    batch_size: int = Field(2000, ge=1, description="Events taken per worker batch.")
    batch_within: float = Field(0.5, gt=0, description="Seconds to wait to fill a batch.")
    max_event_bytes: int = Field(65536, ge=256, description="Larger records are dead-lettered.")

    data_dir: Path = Field(Path(".leap-data"), description="Worker local state (tables).")
    table_store: str = Field(
        "memory://",
        description="Faust table store: memory:// only (tables rebuilt from their changelogs).",
    )
    worker_web_port: int = Field(6066, description="Port of the worker's own web server.")
    producer_max_batch_size: int = Field(
        16384, ge=1, description="Producer batch bytes (the Tansu demo broker needs 1)."
    )
    producer_idempotence: bool = Field(
        True, description="Idempotent producers (off only for the Tansu demo broker)."
    )
    broker_session_timeout: float = Field(
        10.0, description="Kafka consumer session timeout (seconds)."
    )

    api_host: str = "127.0.0.1"
    api_port: int = 8080
    api_cors_origins: list[str] = Field(
        [],
        description="Origins (e.g. https://portal.example.ac.uk) whose pages may call the API "
        'from a browser (the portal widget); in the environment a JSON list: ["https://…"].',
    )

    # API authentication (api/auth.py): bearer JWTs, always on. Algorithms are pinned here,
    # never taken from a token; `iss`, `aud`, `exp` and `sub` are required. RS256/ES256 verify
    # with a JWKS or a PEM public key, HS256 with a shared secret only if listed here.
    auth_issuer: str | None = Field(
        None,
        description="Required `iss` of API tokens (the identity provider). Unset: the API "
        "refuses to start, and `leap token` signs as 'leap-dev'.",
    )
    auth_audience: str = Field("leap-api", description="Required `aud` of API tokens.")
    auth_algorithms: list[Literal["RS256", "ES256", "HS256"]] = Field(
        ["RS256"], description='Accepted algorithms; in the environment a JSON list: ["ES256"].'
    )
    auth_jwks_url: str | None = Field(
        None, description="The identity provider's JWKS URL (keys by `kid`, cached 5 min)."
    )
    auth_public_key_file: Path | None = Field(
        None, description="A PEM public key verifying RS256/ES256, instead of a JWKS."
    )
    auth_hs256_secret: SecretStr | None = Field(
        None, description="Shared secret (at least 32 bytes) for HS256; needs HS256 listed."
    )
    auth_leeway_seconds: int = Field(
        30, ge=0, le=300, description="Clock skew allowed on `exp`, `nbf` and `iat`."
    )
    auth_dev_key_file: Path | None = Field(
        None,
        description="`leap token`'s RSA signing key, created if absent; unset: "
        "<data_dir>/auth/dev-signing-key.pem. Development only.",
    )

    @field_validator("timezone")
    @classmethod
    def _known_timezone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:  # a KeyError pydantic would not catch
            raise ValueError(
                f"{value!r} is not a time zone; set LEAP_TIMEZONE to an IANA name such as "
                "Europe/London"
            ) from exc
        return value

    @field_validator("table_store")
    @classmethod
    def _memory_store_only(cls, value: str) -> str:
        """Faust's RocksDB store writes only into the current event's partition, and LEAP
        writes its tables in batches outside any one event (streams/table_batch.py): a
        worker on rocksdb:// would stop at its first batch, so it is refused at start."""
        if value != "memory://":
            raise ValueError(
                f"{value!r} is not supported; set LEAP_TABLE_STORE=memory:// (the worker "
                "rebuilds its tables from their changelogs at start; docs/benchmarks.md, "
                "section 4, measures RocksDB)"
            )
        return value

    @cached_property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    @property
    def bootstrap_servers(self) -> list[str]:
        return [s.strip() for s in self.kafka_bootstrap.split(",") if s.strip()]
