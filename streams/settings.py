"""One frozen settings object, read from the environment once, at the entrypoint."""

from __future__ import annotations

import ipaddress
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from streams.dkim_settings import DKIM_MIN_BITS, DkimKeyError, DkimSettings, read_dkim_key
from streams.dkim_settings import dkim_settings as _dkim
from streams.setting_values import SettingsError
from streams.setting_values import boolean as _bool
from streams.setting_values import number as _number
from streams.setting_values import opt_bool as _opt_bool
from streams.setting_values import seconds as _seconds
from streams.setting_values import whole as _int

__all__ = [
    "DKIM_MIN_BITS",
    "DkimKeyError",
    "DkimSettings",
    "Settings",
    "SettingsError",
    "load_settings",
    "read_dkim_key",
]


@dataclass(frozen=True)
class Settings:
    data_dir: Path
    broker_url: str | None  # None: start the embedded broker
    database_url: str
    partitions: int
    app_id: str
    smtp_host: str | None
    smtp_port: int
    smtp_connections: int
    smtp_starttls: bool
    smtp_username: str | None
    smtp_password: str | None
    mail_from: str
    maildir: Path
    public_url: str
    digest_time: tuple[int, int]
    # A digest claimed by a run that never finished it (the process died mid-send) is taken
    # over after this long. Far above one SMTP attempt; a re-send keeps its Message-ID.
    digest_stale_after_s: float
    suspend_after_bounces: int  # hard bounces in a row after which a subscriber's digests stop
    digest_maps: bool  # a map picture per tracked address in the digests' HTML part
    timezone: str
    secret_key: str
    worker_web_port: int
    worker_web_enabled: bool
    worker_web_host: str
    log_format: str  # auto | json | console
    log_level: str
    session_timeout_s: float
    embedded_broker_port: int
    # Tansu 0.6 (the embedded broker) reports a partition's end offset as one past the first
    # record of its last batch; Faust's table recovery trusts that number. One record per
    # produced batch keeps it right. None (unset): each process asks the broker at start
    # (streams/adapters/broker_probe.py); true or false overrides that.
    single_record_batches: bool | None
    # How long a consumer's fetch may wait for records. Faust asks for 1500 ms, and the
    # embedded broker answers about when that runs out even once records have arrived, so
    # each of the three topics an alert crosses cost up to 1.5 s (bench/README.md, Pipeline).
    fetch_max_wait_ms: int
    topic_replication: int
    # Geocoding: the local gazetteer always, then remote services as (kind, url) in order.
    remote_geocoders: tuple[tuple[str, str], ...]
    geocode_timeout_s: float
    geocode_min_interval_s: float
    geocode_retry_base_s: float
    geocode_max_attempts: int
    service_state: str
    web_host: str
    web_port: int
    # The site's /metrics, apart from the public site (what a scrape shows moves with who is
    # enrolled): loopback by default; port 0 turns it off.
    web_metrics_host: str
    web_metrics_port: int
    map_tiles_url: str  # "" for no background map
    # Reverse proxies whose X-Forwarded-For is believed (empty: none, the peer is the client).
    web_trusted_proxies: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]
    # Settings-changed e-mails: the changes of this long after the first one go out in one
    # e-mail (SOR_SETTINGS_NOTICE_DELAY, in minutes), so toggling a watch cannot flood an inbox.
    settings_notice_delay_s: float
    dkim: DkimSettings | None = None  # None: SOR_DKIM=off (a relay signs, or nobody does)

    @property
    def uses_smtp(self) -> bool:
        return self.smtp_host is not None

    @property
    def embedded_broker(self) -> bool:
        return self.broker_url is None

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)


_MAKE_A_KEY = "make one with: python3 -c 'import secrets; print(secrets.token_urlsafe(48))'"


def _secret_key(env: Mapping[str, str], data_dir: Path) -> str:
    """Signs unsubscribe links. Embedded mode keeps a generated key in the data folder."""
    key = env.get("SOR_SECRET_KEY")
    if key:
        if len(key) < 32:
            raise SettingsError(f"SOR_SECRET_KEY: use at least 32 characters of random text; {_MAKE_A_KEY}")
        # An example's placeholder (deploy/k8s/sor-notify.yaml's) is public: links it signs
        # can be forged by anyone who read the repository.
        if "change-me" in key.lower() or len(set(key)) < 12:
            raise SettingsError(
                "SOR_SECRET_KEY: this is an example placeholder or not random text; " + _MAKE_A_KEY
            )
        return key
    path = data_dir / "secret.key"
    if path.exists():
        return path.read_text().strip()
    data_dir.mkdir(parents=True, exist_ok=True)
    key = secrets.token_urlsafe(48)
    path.write_text(key)
    path.chmod(0o600)
    return key


# RFC 8301 asks signers for 2048 bits or more (1024 is still verified, and breakable).
def _remote_geocoders(env: Mapping[str, str]) -> tuple[tuple[str, str], ...]:
    raw = env.get("SOR_GEOCODERS") or ""
    out = []
    for item in filter(None, (p.strip() for p in raw.split(","))):
        kind, sep, url = item.partition("=")
        if (
            not sep
            or kind not in {"nominatim", "pelias", "arcgis"}
            or not url.startswith(("http://", "https://"))
        ):
            raise SettingsError(
                f"SOR_GEOCODERS: {item!r} should look like nominatim=https://host, "
                "pelias=https://host or arcgis=https://host (comma-separated, tried in order)"
            )
        out.append((kind, url.rstrip("/")))
    return tuple(out)


def _trusted_proxies(env: Mapping[str, str]) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    raw = env.get("SOR_WEB_TRUSTED_PROXIES") or ""
    out = []
    for item in filter(None, (p.strip() for p in raw.split(","))):
        try:
            out.append(ipaddress.ip_network(item))
        except ValueError:
            raise SettingsError(
                f"SOR_WEB_TRUSTED_PROXIES: {item!r} is not an IP address or network; expected addresses "
                "or CIDR networks of your reverse proxies, comma-separated, e.g. 10.0.0.5,192.168.10.0/24"
            ) from None
    return tuple(out)


def _tiles(env: Mapping[str, str]) -> str:
    raw = env.get("SOR_MAP_TILES_URL")
    if raw is None:
        return "https://tile.openstreetmap.org/{z}/{x}/{y}.png"
    if raw and not (raw.startswith("https://") and "{z}" in raw and "{x}" in raw and "{y}" in raw):
        raise SettingsError(
            "SOR_MAP_TILES_URL: expected an https URL with {z}, {x} and {y}, or empty for no map tiles"
        )
    return raw


def load_settings(env: Mapping[str, str]) -> Settings:
    data_dir = Path(env.get("SOR_DATA_DIR") or ".sor-data").resolve()

    broker = env.get("SOR_BROKER_URL") or None
    if broker is not None:
        if not re.fullmatch(r"(kafka://)?[\w.\-]+:\d+(,(kafka://)?[\w.\-]+:\d+)*", broker):
            raise SettingsError(
                f"SOR_BROKER_URL={broker!r}: expected host:port[,host:port...], e.g. localhost:9092"
            )
        broker = ",".join(b.removeprefix("kafka://") for b in broker.split(","))

    database_url = env.get("SOR_DATABASE_URL") or f"sqlite:///{data_dir / 'sor-notify.db'}"
    if not database_url.startswith(("sqlite:", "postgresql")):
        raise SettingsError("SOR_DATABASE_URL: expected sqlite:///PATH or postgresql+psycopg://user@host/db")

    digest_raw = env.get("SOR_DIGEST_TIME") or "06:00"
    m = re.fullmatch(r"([01]?\d|2[0-3]):([0-5]\d)", digest_raw)
    if not m:
        raise SettingsError(f"SOR_DIGEST_TIME={digest_raw!r}: expected HH:MM in 24-hour time")

    tz = env.get("SOR_TIMEZONE") or "America/Chicago"
    try:
        ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError):
        raise SettingsError(f"SOR_TIMEZONE={tz!r}: not a known IANA time zone") from None

    public_url = (env.get("SOR_PUBLIC_URL") or "http://127.0.0.1:8080").rstrip("/")
    if not public_url.startswith(("http://", "https://")):
        raise SettingsError(f"SOR_PUBLIC_URL={public_url!r}: expected an http(s) URL")

    log_format = env.get("SOR_LOG_FORMAT") or "auto"
    if log_format not in {"auto", "json", "console"}:
        raise SettingsError(f"SOR_LOG_FORMAT={log_format!r}: expected auto, json or console")
    log_level = (env.get("SOR_LOG_LEVEL") or "info").lower()
    if log_level not in {"debug", "info", "warning", "error"}:
        raise SettingsError(f"SOR_LOG_LEVEL={log_level!r}: expected debug, info, warning or error")

    mail_from = env.get("SOR_MAIL_FROM") or "Registry Notifications <no-reply@sor-notify.localhost>"
    if "@" not in mail_from:
        raise SettingsError("SOR_MAIL_FROM: expected an e-mail address, optionally with a name")

    smtp_host = env.get("SOR_SMTP_HOST") or None
    return Settings(
        data_dir=data_dir,
        broker_url=broker,
        database_url=database_url,
        partitions=_int(env, "SOR_PARTITIONS", 12, 1, 256),
        app_id=env.get("SOR_APP_ID") or "sor-notify",
        smtp_host=smtp_host,
        smtp_port=_int(env, "SOR_SMTP_PORT", 587, 1, 65535),
        smtp_connections=_int(env, "SOR_SMTP_CONNECTIONS", 16, 1, 100),
        smtp_starttls=_bool(env, "SOR_SMTP_STARTTLS", True),
        digest_maps=_bool(env, "SOR_DIGEST_MAPS", True),
        smtp_username=env.get("SOR_SMTP_USERNAME") or None,
        smtp_password=env.get("SOR_SMTP_PASSWORD") or None,
        mail_from=mail_from,
        maildir=Path(env.get("SOR_MAILDIR") or data_dir / "maildir").resolve(),
        public_url=public_url,
        digest_time=(int(m.group(1)), int(m.group(2))),
        digest_stale_after_s=_seconds(env, "SOR_DIGEST_STALE_AFTER_S", 1800.0, 0.0, 86400.0),
        suspend_after_bounces=_int(env, "SOR_SUSPEND_AFTER_BOUNCES", 3, 1, 100),
        timezone=tz,
        secret_key=_secret_key(env, data_dir),
        worker_web_port=_int(env, "SOR_WORKER_WEB_PORT", 6066, 0, 65535),
        worker_web_enabled=_bool(env, "SOR_WORKER_WEB", True),
        worker_web_host=env.get("SOR_WORKER_WEB_HOST") or "127.0.0.1",
        log_format=log_format,
        log_level=log_level,
        # The embedded broker holds a new group's first join for half the session timeout
        # (Kafka: group.initial.rebalance.delay.ms, 3 s): 15 s of every start at 30. It runs
        # one worker, for which a shorter timeout costs nothing (bench/README.md, start).
        session_timeout_s=float(_int(env, "SOR_SESSION_TIMEOUT_S", 10 if broker is None else 30, 6, 300)),
        embedded_broker_port=_int(env, "SOR_EMBEDDED_BROKER_PORT", 19092, 1, 65535),
        single_record_batches=_opt_bool(env, "SOR_SINGLE_RECORD_BATCHES"),
        fetch_max_wait_ms=_int(env, "SOR_FETCH_MAX_WAIT_MS", 50 if broker is None else 500, 1, 10000),
        topic_replication=_int(env, "SOR_TOPIC_REPLICATION", 1, 1, 10),
        remote_geocoders=_remote_geocoders(env),
        geocode_timeout_s=_seconds(env, "SOR_GEOCODE_TIMEOUT_S", 5.0, 0.1, 60.0),
        geocode_min_interval_s=_seconds(env, "SOR_GEOCODE_MIN_INTERVAL_S", 1.0, 0.0, 60.0),
        geocode_retry_base_s=_seconds(env, "SOR_GEOCODE_RETRY_BASE_S", 30.0, 0.1, 3600.0),
        geocode_max_attempts=_int(env, "SOR_GEOCODE_MAX_ATTEMPTS", 6, 1, 20),
        service_state=(env.get("SOR_SERVICE_STATE") or "MO").upper(),
        web_host=env.get("SOR_WEB_HOST") or "127.0.0.1",
        web_port=_int(env, "SOR_WEB_PORT", 8080, 0, 65535),
        web_metrics_host=env.get("SOR_WEB_METRICS_HOST") or "127.0.0.1",
        web_metrics_port=_int(env, "SOR_WEB_METRICS_PORT", 6067, 0, 65535),
        map_tiles_url=_tiles(env),
        web_trusted_proxies=_trusted_proxies(env),
        settings_notice_delay_s=60.0
        * _number(
            env,
            "SOR_SETTINGS_NOTICE_DELAY",
            5,
            1,
            1440,
            int,
            "a whole number of minutes",
            "from {lo} to {hi} minutes",
        ),
        dkim=_dkim(env, data_dir, mail_from, uses_smtp=smtp_host is not None),
    )
