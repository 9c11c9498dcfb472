"""Settings: one pydantic-settings class, read once at process start and passed down.

Nothing else in the code base reads the environment. Secrets are ``SecretStr`` so they never
show up in a repr, a log line or a traceback.
"""

from __future__ import annotations

import hashlib
import ipaddress
import re
from functools import cached_property
from typing import Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

_HEX_KEY = re.compile(r"^[0-9a-fA-F]{64}$")
# An admin key guards a server others can reach: long enough that guessing is hopeless.
MIN_ADMIN_KEY_CHARS = 32
_KEY_ID = re.compile(r"^[A-Za-z0-9_-]{1,32}$")


class SettingsError(ValueError):
    """A setting is missing or malformed; the message says how to fix it."""


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", extra="ignore", populate_by_name=True)

    # --- server -------------------------------------------------------------------------------
    host: str = Field("127.0.0.1", validation_alias="HOST")
    port: int = Field(3001, validation_alias="PORT")
    copilot_api_key: SecretStr | None = Field(None, validation_alias="COPILOT_API_KEY")
    log_level: str = Field("INFO", validation_alias="LOG_LEVEL")
    data_dir: str = Field(".copilot-data", validation_alias="COPILOT_DATA_DIR")
    cors_origins: str = Field("", validation_alias="CORS_ORIGINS")
    max_body_bytes: int = Field(1024 * 1024, validation_alias="MAX_BODY_BYTES")
    # Sim's routes carry its whole tool registry (~1 MB in build mode) plus attachments, and
    # its tool results (mark-complete) can be large: their own, larger limit.
    sim_max_body_bytes: int = Field(16 * 1024 * 1024, validation_alias="SIM_MAX_BODY_BYTES")

    # --- secrets the server owns --------------------------------------------------------------
    encryption_key: SecretStr | None = Field(None, validation_alias="ENCRYPTION_KEY")
    # Earlier encryption keys, still read (never written) until `copilot rotate-keys` has moved
    # every row to ENCRYPTION_KEY: comma-separated "id:hex" (or bare "hex", id derived).
    encryption_keys_old: SecretStr | None = Field(None, validation_alias="ENCRYPTION_KEYS_OLD")
    stream_token_secret: SecretStr | None = Field(None, validation_alias="STREAM_TOKEN_SECRET")

    # --- backing services ---------------------------------------------------------------------
    database_url: str | None = Field(None, validation_alias="DATABASE_URL")
    redis_url: str | None = Field(None, validation_alias="REDIS_URL")
    temporal_address: str | None = Field(None, validation_alias="TEMPORAL_ADDRESS")
    temporal_namespace: str = Field("default", validation_alias="TEMPORAL_NAMESPACE")
    temporal_task_queue: str = Field("copilot", validation_alias="TEMPORAL_TASK_QUEUE")
    # The API process also runs a worker and starts runs eagerly (see README, "Latency").
    api_worker: bool = Field(False, validation_alias="API_WORKER")
    # Run workflows under Temporal's full default sandbox (every workflow line checked for
    # non-determinism). Off: the stateless step modules pass through (faster, see
    # worker.workflow_runner). The test suite always runs with it on.
    strict_sandbox: bool = Field(False, validation_alias="STRICT_SANDBOX")
    # Run workflows without the sandbox (about 4-5 ms less worker CPU per run, bench/RESULTS.md).
    # Determinism is then checked only by the test suite, which always runs the full sandbox;
    # STRICT_SANDBOX wins when both are set.
    unsandboxed_workflows: bool = Field(False, validation_alias="UNSANDBOXED_WORKFLOWS")
    # The API's and the worker's event loop: uvloop where installed (auto), or asyncio's own.
    event_loop: Literal["auto", "asyncio", "uvloop"] = Field("auto", validation_alias="EVENT_LOOP")
    temporal_tls_cert: str | None = Field(None, validation_alias="TEMPORAL_TLS_CERT")
    temporal_tls_key: str | None = Field(None, validation_alias="TEMPORAL_TLS_KEY")
    temporal_tls_ca: str | None = Field(None, validation_alias="TEMPORAL_TLS_CA")
    temporal_tls_server_name: str | None = Field(None, validation_alias="TEMPORAL_TLS_SERVER_NAME")
    temporal_api_key: SecretStr | None = Field(None, validation_alias="TEMPORAL_API_KEY")
    temporal_search_attributes: bool = Field(True, validation_alias="TEMPORAL_SEARCH_ATTRIBUTES")

    # --- providers ----------------------------------------------------------------------------
    # A provider name (copilot.providers.plugins: the built-ins and installed plugins).
    default_provider: str = Field("openai", validation_alias="DEFAULT_PROVIDER")
    default_model: str = Field("gpt-4o-mini", validation_alias="DEFAULT_MODEL")
    openai_api_key: SecretStr | None = Field(None, validation_alias="OPENAI_API_KEY")
    openai_base_url: str | None = Field(None, validation_alias="OPENAI_BASE_URL")
    anthropic_api_key: SecretStr | None = Field(None, validation_alias="ANTHROPIC_API_KEY")
    anthropic_base_url: str | None = Field(None, validation_alias="ANTHROPIC_BASE_URL")
    ollama_url: str = Field("http://127.0.0.1:11434", validation_alias="OLLAMA_URL")
    provider_timeout_s: float = Field(120.0, validation_alias="PROVIDER_TIMEOUT_S")
    # Extended thinking for Claude models (tokens; 0 = off; at least 1024 when on).
    anthropic_thinking_budget: int = Field(0, validation_alias="ANTHROPIC_THINKING_BUDGET", ge=0)
    # Users' own base URLs may point at private/loopback/link-local addresses (e.g. a
    # self-hosted Ollama on the LAN). Off by default: such URLs would let users probe the
    # server's network (SSRF).
    allow_private_provider_urls: bool = Field(False, validation_alias="ALLOW_PRIVATE_PROVIDER_URLS")
    # An upstream copilot backend speaking Sim's protocol (provider ``copilot-backend``): Sim's
    # hosted one, or another instance of this server (then use a service key it issued).
    copilot_backend_url: str | None = Field(None, validation_alias="COPILOT_BACKEND_URL")
    copilot_backend_api_key: SecretStr | None = Field(
        None, validation_alias="COPILOT_BACKEND_API_KEY"
    )

    # --- abuse limits (per minute) -----------------------------------------------------------
    rate_limit_starts_per_user: int = Field(100, validation_alias="RATE_LIMIT_STARTS_PER_USER")
    rate_limit_starts_per_ip: int = Field(200, validation_alias="RATE_LIMIT_STARTS_PER_IP")
    rate_limit_reads: int = Field(1200, validation_alias="RATE_LIMIT_READS")
    rate_limit_window_s: int = Field(60, validation_alias="RATE_LIMIT_WINDOW")
    trusted_proxies: str = Field("", validation_alias="TRUSTED_PROXIES")
    worker_metrics_port: int = Field(0, validation_alias="WORKER_METRICS_PORT")

    # --- agent loop and tools -----------------------------------------------------------------
    max_turns: int = Field(25, validation_alias="MAX_TURNS", ge=1, le=200)
    confirmation_timeout_s: int = Field(600, validation_alias="CONFIRMATION_TIMEOUT", ge=1)
    client_tool_timeout_s: int = Field(600, validation_alias="CLIENT_TOOL_TIMEOUT", ge=1)
    host_rejoin_grace_s: int = Field(15, validation_alias="SIM_REJOIN_GRACE", ge=0, le=3600)
    tool_heartbeat_timeout_s: int = Field(
        5, validation_alias="TOOL_HEARTBEAT_TIMEOUT", ge=2, le=300
    )
    tools_requiring_confirmation: str = Field("", validation_alias="TOOLS_REQUIRING_CONFIRMATION")
    extra_tool_modules: str = Field("", validation_alias="EXTRA_TOOL_MODULES")
    max_tool_result_bytes: int = Field(
        8 * 1024 * 1024, validation_alias="MAX_TOOL_RESULT_BYTES", ge=1024
    )
    tool_result_inline_bytes: int = Field(
        32 * 1024, validation_alias="TOOL_RESULT_INLINE_BYTES", ge=256
    )
    max_offered_tools: int = Field(64, validation_alias="MAX_OFFERED_TOOLS", ge=1, le=512)
    # Sim's copilot model ids -> provider models, over the built-in table (copilot/sim/models.py):
    # JSON {"claude-4.6-opus": "anthropic:claude-opus-4-6"} or "id=provider:model,...".
    sim_model_aliases: str = Field("", validation_alias="SIM_MODEL_ALIASES")
    sim_app_url: str | None = Field(None, validation_alias="SIM_APP_URL")
    sim_app_api_key: SecretStr | None = Field(None, validation_alias="SIM_APP_API_KEY")

    # --- runs -----------------------------------------------------------------------------------
    enable_headless_api: bool = Field(True, validation_alias="ENABLE_HEADLESS_API")
    run_timeout_s: int = Field(30 * 60, validation_alias="RUN_TIMEOUT")
    event_log_ttl_s: int = Field(24 * 3600, validation_alias="EVENT_LOG_TTL")
    sse_ping_s: float = Field(15.0, validation_alias="SSE_PING_INTERVAL")
    stream_token_ttl_s: int = Field(15 * 60, validation_alias="STREAM_TOKEN_TTL")

    @field_validator("default_provider")
    @classmethod
    def _known_provider(cls, value: str) -> str:
        # Imported here: providers sit a floor above settings (their registry imports this
        # module). Loading the default provider's class when settings are read makes a broken
        # or missing plugin stop start-up with the reason, instead of failing every run.
        from copilot.providers.plugins import UnknownProvider, provider_class

        try:
            provider_class(value)
        except UnknownProvider as exc:
            raise ValueError(f"DEFAULT_PROVIDER: {exc.message}") from None
        return value

    @field_validator("stream_token_ttl_s")
    @classmethod
    def _token_ttl_bounded(cls, value: int) -> int:
        if not 1 <= value <= 15 * 60:
            raise ValueError("STREAM_TOKEN_TTL must be between 1 and 900 seconds")
        return value

    @cached_property
    def encryption_key_bytes(self) -> bytes:
        return parse_hex_key(self.encryption_key, "ENCRYPTION_KEY")

    @cached_property
    def old_encryption_keys(self) -> dict[str, bytes]:
        """ENCRYPTION_KEYS_OLD by key id (see ``copilot.crypto``)."""
        return parse_old_keys(self.encryption_keys_old)

    @cached_property
    def stream_token_key_bytes(self) -> bytes:
        return parse_hex_key(self.stream_token_secret, "STREAM_TOKEN_SECRET")

    @property
    def confirm_always(self) -> frozenset[str]:
        """Tools that always wait for a human decision, whatever a request says."""
        return frozenset(
            n.strip() for n in self.tools_requiring_confirmation.split(",") if n.strip()
        )

    @property
    def dev_mode(self) -> bool:
        """No admin key: development mode (no auth, loopback only)."""
        return self.copilot_api_key is None or not self.copilot_api_key.get_secret_value()

    def check_listen(self, host: str) -> None:
        """Refuse to serve beyond loopback without real auth, saying how to fix it.

        Loopback: development mode, or any admin key (only this machine reaches it). Beyond:
        an admin key of at least ``MIN_ADMIN_KEY_CHARS`` characters.
        """
        if is_loopback_address(host):
            return
        if self.dev_mode or self.copilot_api_key is None:
            raise SettingsError(
                f"Refusing to listen on {host} without COPILOT_API_KEY: development mode (no "
                "auth) is loopback only. Set COPILOT_API_KEY or use --host 127.0.0.1."
            )
        if len(self.copilot_api_key.get_secret_value()) < MIN_ADMIN_KEY_CHARS:
            raise SettingsError(
                f"Refusing to listen on {host}: COPILOT_API_KEY is shorter than "
                f"{MIN_ADMIN_KEY_CHARS} characters, too easy to guess on a server others can "
                "reach. Generate one with "
                "`python -c 'import secrets; print(secrets.token_urlsafe(32))'`."
            )

    def runtime_urls(self) -> tuple[str, str, str]:
        """(DATABASE_URL, REDIS_URL, TEMPORAL_ADDRESS), or a SettingsError saying what to set."""
        self.require_runtime()
        assert self.database_url is not None
        assert self.redis_url is not None
        assert self.temporal_address is not None
        return self.database_url, self.redis_url, self.temporal_address

    @property
    def model_aliases(self) -> dict[str, str]:
        from copilot.sim.models import AliasError, parse_aliases

        try:
            return parse_aliases(self.sim_model_aliases)
        except AliasError as exc:
            raise SettingsError(str(exc)) from None

    def require_runtime(self) -> None:
        """Refuse to start an API or worker that lacks what it needs, saying how to fix it."""
        missing = [
            name
            for name, value in (
                ("DATABASE_URL", self.database_url),
                ("REDIS_URL", self.redis_url),
                ("TEMPORAL_ADDRESS", self.temporal_address),
            )
            if not value
        ]
        if missing:
            raise SettingsError(
                f"{', '.join(missing)} not set. Run `copilot dev` to start everything embedded, "
                "or set them (see .env.example)."
            )
        self.encryption_key_bytes  # noqa: B018 - validates the key
        self.old_encryption_keys  # noqa: B018
        self.stream_token_key_bytes  # noqa: B018
        self.model_aliases  # noqa: B018 - a malformed SIM_MODEL_ALIASES stops start-up


def is_loopback_address(host: str) -> bool:
    """A bind address only this machine reaches: ``localhost``, 127.x.x.x, ``::1``."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.removeprefix("[").removesuffix("]")).is_loopback
    except ValueError:
        return False


def parse_hex_key(value: SecretStr | None, name: str) -> bytes:
    if value is None or not value.get_secret_value():
        raise SettingsError(
            f"{name} is not set. Generate one with "
            "`python -c 'import secrets; print(secrets.token_hex(32))'` "
            "(`copilot dev` does this for you in its data folder)."
        )
    raw = value.get_secret_value().strip()
    if not _HEX_KEY.match(raw):
        raise SettingsError(f"{name} must be 32 bytes written as 64 hex characters.")
    return bytes.fromhex(raw)


def key_id(key: bytes) -> str:
    """A key's id, stored with each row it encrypted: the first 8 hex chars of its SHA-256."""
    return hashlib.sha256(key).hexdigest()[:8]


def parse_old_keys(value: SecretStr | None) -> dict[str, bytes]:
    keys: dict[str, bytes] = {}
    raw = value.get_secret_value() if value is not None else ""
    for n, item in enumerate(p.strip() for p in raw.split(",")):
        if not item:
            continue
        kid, sep, hex_key = item.rpartition(":")
        if not _HEX_KEY.match(hex_key.strip()) or (sep and not _KEY_ID.match(kid.strip())):
            raise SettingsError(
                f"ENCRYPTION_KEYS_OLD entry {n + 1} is malformed: write comma-separated "
                '"id:hex" pairs (id: 1-32 letters, digits, "-" or "_"; hex: 64 hex characters), '
                "or bare hex keys."
            )
        key = bytes.fromhex(hex_key.strip())
        keys[kid.strip() if sep else key_id(key)] = key
    return keys
