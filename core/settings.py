"""Runtime configuration, read from the environment (and `.env`) by pydantic-settings."""

from functools import lru_cache
from typing import Literal

from pydantic import model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEV_SECRET = "dev-only-secret-change-me"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", extra="ignore")

    environment: Literal["dev", "test", "prod"] = "dev"
    secret_key: str = DEV_SECRET
    log_format: Literal["console", "json"] | None = None

    database_url: str = ""
    db_pool_size: int = 5

    temporal_address: str = "127.0.0.1:7233"
    temporal_namespace: str = "default"
    task_queue: str = "relais-main"
    mail_task_queue: str = "relais-mail"
    # Server-side rate limit of the mail task queue (activities per second, whole cluster).
    mail_rate_per_second: float = 50.0

    smtp_host: str = "127.0.0.1"
    smtp_port: int = 1025
    smtp_username: str | None = None
    smtp_password: str | None = None
    smtp_starttls: bool = False
    smtp_timeout_seconds: float = 30.0
    mail_from: str = "Relais <no-reply@relais.local>"
    mail_domain: str = "relais.local"

    # Public URLs: links in mails and navigation are built from these, never from the Host header.
    campaigns_url: str = "http://localhost:8001"
    notices_url: str = "http://localhost:8002"
    removals_url: str = "http://localhost:8003"
    interventions_url: str = "http://localhost:8004"
    temporal_ui_url: str = "http://localhost:8233"
    mailcatcher_url: str = "http://localhost:8025"

    session_max_age_seconds: int = 8 * 3600
    # «Mot de passe oublié ?»: validity of the reset link (minutes), and requests allowed per hour for one address
    # and for one client (IP address).
    password_reset_minutes: int = 60
    password_reset_per_address: int = 3
    password_reset_per_client: int = 10
    # The «Support» link of the login page (mailto: or https:); empty: no link.
    support_url: str = "mailto:support@relais.local"
    action_link_max_age_days: int = 30
    # Validity of the {{lien_connexion}} link to the driver's space (no password: the link is the key).
    driver_space_link_days: int = 30
    # Campaign sending: recipients rendered per batch, and parallel SMTP connections per batch.
    campaign_batch_size: int = 500
    smtp_connections: int = 4
    smtp_max_per_second: float = 0.0
    pdf_timeout_seconds: float = 30.0
    # Signals to workflows (`core.signals`): the relay is woken at each commit, and also sweeps this often for what
    # could not be delivered (Temporal unreachable).
    signal_sweep_seconds: float = 2.0
    # ... and delivers at most this many signals per second (0: no limit). Each one wakes a workflow that writes and
    # sends mails: no use going faster than MAIL_RATE_PER_SECOND, and a burst of clicks keeps the CPU for answering.
    signal_rate_per_second: float = 50.0
    # Delivered signals are kept this long in core.workflow_signals (then the workflows' histories have them).
    signal_retention_days: int = 30
    # Removals: remind the deposer of a mandate still "Prévenu" after this many days.
    removal_reminder_days: int = 3
    # Removals: the operator's logistics contact, given in the «Signaler une dépose» warning (e.g. a phone number and
    # an address); empty: the warning names no contact (`make run` shows a demonstration one).
    removal_logistics_contact: str = ""

    @model_validator(mode="after")
    def _secrets_required_outside_dev(self) -> "Settings":
        if self.environment != "dev" and (self.secret_key == DEV_SECRET or len(self.secret_key) < 32):
            raise ValueError("SECRET_KEY must be set to a random value of at least 32 characters outside dev")
        if self.environment == "prod" and not self.database_url:
            raise ValueError("DATABASE_URL is required in prod")
        return self

    @property
    def sqlalchemy_url(self) -> str:
        """DATABASE_URL accepted as postgresql:// and forced onto the psycopg 3 driver."""
        url = self.database_url
        if not url:
            raise RuntimeError("DATABASE_URL is not set (make run and the tests set it for you)")
        for prefix in ("postgresql+psycopg://", "postgresql://", "postgres://"):
            if url.startswith(prefix):
                return "postgresql+psycopg://" + url[len(prefix):]
        return url

    @property
    def is_dev(self) -> bool:
        return self.environment != "prod"

    def service_urls(self) -> dict[str, str]:
        return {
            "campaigns": self.campaigns_url,
            "notices": self.notices_url,
            "removals": self.removals_url,
            "interventions": self.interventions_url,
        }


@lru_cache
def get_settings() -> Settings:
    return Settings()
