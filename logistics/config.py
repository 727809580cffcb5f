"""Settings of the service, read in one place: config/defaults.toml, then the environment."""

from __future__ import annotations

import dataclasses
import os
import tomllib
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any

CONFIG_DIR = Path(
    os.environ.get("COLDCHAIN_CONFIG_DIR", Path(__file__).resolve().parents[1] / "config")
)
ENV_PREFIX = "COLDCHAIN_"


@dataclasses.dataclass(frozen=True)
class Settings:
    """Every setting, declared once; values come from config/defaults.toml and the environment."""

    database_url: str
    database_pool_size: int
    database_echo: bool
    http_host: str
    http_port: int
    http_max_body_bytes: int
    http_workers: int
    http_unavailable_retry_after_s: int
    site_timezone: str
    # --- web app for people (issue 14): [web] ---
    web_secret_key: str
    web_key_file: str
    web_secure_cookie: bool
    # --- stock ledger (issue 2): [ledger] ---
    ledger_consumption_window_days: int
    # --- sensors / MQTT ingestion (issue 3): [mqtt], [broker], [ingest], [evaluation] ---
    mqtt_url: str
    mqtt_username: str
    mqtt_password: str
    mqtt_client_id: str
    mqtt_protocol: str
    mqtt_keepalive_s: int
    mqtt_session_expiry_s: int
    mqtt_receive_maximum: int
    mqtt_reconnect_min_s: float
    mqtt_reconnect_max_s: float
    mqtt_topic_prefix: str
    mqtt_shared_group: str
    broker_host: str
    broker_port: int
    broker_password_file: str
    broker_ingest_username: str
    broker_ingest_password: str
    ingest_batch_size: int
    ingest_flush_interval_ms: int
    ingest_max_payload_bytes: int
    ingest_max_batch_readings: int
    ingest_dead_letter_payload_chars: int
    ingest_log_payload_chars: int
    ingest_min_temp_c: float
    ingest_max_temp_c: float
    ingest_max_future_s: int
    ingest_earliest_ts: str
    ingest_late_after_s: int
    ingest_retry_min_s: float
    ingest_retry_max_s: float
    evaluation_min_interval_ms: int
    evaluation_poll_s: float
    evaluation_claim_limit: int
    evaluation_stale_after_s: int
    evaluation_retry_min_s: float
    evaluation_retry_max_s: float
    # --- excursions, alerts, notifications, scheduler (issue 4) ---
    alerts_heat_warning_min: int
    alerts_heat_alarm_min: int
    alerts_cold_warning_min: int
    alerts_cold_alarm_min: int
    alerts_freeze_limit_c: float
    alerts_max_gap_min: int
    alerts_silence_factor: float
    alerts_low_battery_pct: float
    alerts_power_failure_alarm_min: int
    alerts_expiry_warning_days: int
    alerts_remind_every_min: int
    alerts_escalate_after_reminders: int
    alerts_max_escalation_levels: int
    notify_webhook_timeout_s: float
    notify_allowed_networks: str
    notify_max_attempts: int
    notify_backoff_base_s: float
    notify_backoff_max_s: float
    notify_batch_size: int
    notify_smtp_host: str
    notify_smtp_port: int
    notify_smtp_user: str
    notify_smtp_password: str
    notify_smtp_starttls: bool
    notify_mail_from: str
    scheduler_enabled_jobs: str
    scheduler_sensor_silence_every_s: int
    scheduler_stock_states_every_s: int
    scheduler_expiry_every_s: int
    scheduler_reminders_every_s: int
    scheduler_outbox_every_s: int
    scheduler_excursions_every_s: int
    scheduler_commitments_every_s: int
    scheduler_idempotency_purge_every_s: int
    scheduler_indents_every_s: int
    scheduler_lease_ttl_s: int
    # --- safe retries (issue 11): [idempotency] ---
    idempotency_ttl_s: int
    # --- sessions and availability (issue 5): [sessions], [availability] ---
    sessions_day_start: str
    sessions_slot_minutes: int
    sessions_slot_count: int
    sessions_consumption_window_days: int
    availability_version_check_s: float
    availability_max_age_s: int
    # --- paperwork (issue 19): [indents] ---
    indents_answer_within_h: int
    indents_supply_period_days: int
    # --- users, tokens, audit, rate limits (issue 6): [auth] ---
    auth_token_ttl_s: int
    auth_rate_limit: str
    auth_rate_limit_storage: str
    auth_rate_limit_key_prefix: str
    auth_rate_limit_strategy: str
    auth_proxy_hops: int
    auth_token_cache_s: float
    # --- operations (issue 16): [metrics], [logging], [readings] ---
    metrics_host: str
    metrics_ingest_port: int
    metrics_evaluate_port: int
    metrics_scheduler_port: int
    metrics_multiproc_dir: str
    logging_format: str
    logging_level: str
    readings_retention_days: int
    readings_partitions_ahead: int
    readings_archive_dir: str
    readings_aggregate_after_days: float
    scheduler_partitions_every_s: int
    scheduler_retention_every_s: int
    # --- vaccines in transit (issue 18): [transit] ---
    transit_heat_warning_min: int
    transit_heat_alarm_min: int
    transit_heat_alarm_window_min: int
    transit_cold_warning_min: int
    transit_cold_alarm_min: int
    transit_freeze_limit_c: float
    transit_logger_interval_s: int

    def replace(self, **changes: Any) -> Settings:
        """Return a copy with some settings changed."""
        return dataclasses.replace(self, **changes)


def _flatten(tree: dict[str, Any]) -> dict[str, Any]:
    return {
        f"{section}_{key}": value for section, table in tree.items() for key, value in table.items()
    }


def _coerce(raw: str, kind: Any) -> Any:
    if kind is bool:
        if raw.lower() in {"1", "true", "yes", "on"}:
            return True
        if raw.lower() in {"0", "false", "no", "off"}:
            return False
        raise ValueError(f"not a boolean: {raw!r}")
    if kind is int:
        return int(raw)
    if kind is float:
        return float(raw)
    return raw


def load_settings(
    overrides: dict[str, Any] | None = None, environ: Mapping[str, str] | None = None
) -> Settings:
    """Read defaults from config/, apply COLDCHAIN_* environment variables, then overrides."""
    env: Mapping[str, str] = os.environ if environ is None else environ
    with open(CONFIG_DIR / "defaults.toml", "rb") as fh:
        values = _flatten(tomllib.load(fh))
    hints = typing.get_type_hints(Settings)
    fields = {f.name for f in dataclasses.fields(Settings)}
    unknown = set(values) - fields
    if unknown:
        raise KeyError(
            f"config/defaults.toml has keys Settings does not declare: {sorted(unknown)}"
        )
    for name in fields:
        env_name = ENV_PREFIX + name.upper()
        if env_name in env:
            values[name] = _coerce(env[env_name], hints[name])
    values.update(overrides or {})
    missing = fields - set(values)
    if missing:
        raise KeyError(f"settings without a default in config/defaults.toml: {sorted(missing)}")
    return Settings(**values)
