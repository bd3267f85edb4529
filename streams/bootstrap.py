"""The composition root: builds the engine, mail sender, geocoder and stream graph once.

Only entrypoints and tests import this module; everything else receives the `Runtime` it builds.
"""

from __future__ import annotations

from cryptography.hazmat.primitives.asymmetric import rsa
from sqlalchemy.engine import Engine

from streams import worker_pages
from streams.adapters.db import make_engine
from streams.adapters.dkim_keys import embedded_key
from streams.adapters.dkim_signing import DkimSigner, SigningSender
from streams.adapters.gazetteer import LocalGazetteer
from streams.adapters.geocode_cache import CachedGeocoder, ChainGeocoder
from streams.adapters.mail import MailSender, SmtpSender
from streams.adapters.maildir import MaildirSender
from streams.adapters.remote_geocoder import RemoteGeocoder
from streams.adapters.schema_migrations import ensure_ready
from streams.agents import (
    address_changes,
    alerts,
    digests,
    offender_watches,
    registry_events,
    tracked_circles,
)
from streams.app import StreamGraph, create_app
from streams.domain.geocoding import Geocoder
from streams.runtime import Runtime
from streams.settings import DkimKeyError, DkimSettings, Settings, SettingsError, read_dkim_key

# Every flow of the worker, in the order they are registered.
FLOWS = (registry_events, offender_watches, tracked_circles, address_changes, alerts, digests, worker_pages)


def dkim_key_for(dkim: DkimSettings) -> rsa.RSAPrivateKey:
    """The signing key, read (or, for the embedded default, made) once per process."""
    try:
        return embedded_key(dkim.key_file) if dkim.generate else read_dkim_key(dkim.key_file)
    except DkimKeyError as exc:
        if dkim.generate:
            raise SettingsError(
                f"the generated DKIM key: {exc} (remove it to make a new one, then publish its record)"
            ) from None
        raise SettingsError(f"SOR_DKIM_PRIVATE_KEY_FILE: {exc}") from None


def mail_sender_for(settings: Settings) -> MailSender:
    """The mail server of the settings; every message DKIM-signed unless SOR_DKIM=off."""
    inner = _server_for(settings)
    if settings.dkim is None:
        return inner
    signer = DkimSigner(settings.dkim.selector, settings.dkim.domain, dkim_key_for(settings.dkim))
    return SigningSender(inner, signer)


def _server_for(settings: Settings) -> MailSender:
    if settings.smtp_host is not None:  # settings.uses_smtp, said so the type checker sees it
        return SmtpSender(
            host=settings.smtp_host,
            port=settings.smtp_port,
            starttls=settings.smtp_starttls,
            username=settings.smtp_username,
            password=settings.smtp_password,
            timeout=30.0,
        )
    return MaildirSender(settings.maildir)


def geocoder_for(settings: Settings, engine: Engine) -> Geocoder:
    """The local gazetteer first; remote services (cached) only for what it cannot place."""
    remotes = [
        CachedGeocoder(
            RemoteGeocoder(
                kind,
                url,
                timeout=settings.geocode_timeout_s,
                min_interval=settings.geocode_min_interval_s,
                state=settings.service_state,
            ),
            engine,
            kind,
        )
        for kind, url in settings.remote_geocoders
    ]
    return ChainGeocoder(LocalGazetteer(engine, state=settings.service_state), *remotes)


def upgrades_on_start(settings: Settings) -> bool:
    """The embedded SQLite database upgrades itself; PostgreSQL is upgraded on purpose, by
    `sor-notify db upgrade`, and every command refuses to run on it until then."""
    return settings.database_url.startswith("sqlite")


def build_runtime(settings: Settings) -> Runtime:
    (settings.data_dir / "faust").mkdir(parents=True, exist_ok=True)
    engine = make_engine(settings.database_url)
    ensure_ready(engine, upgrade_on_start=upgrades_on_start(settings))
    return Runtime(
        settings=settings,
        engine=engine,
        mail=mail_sender_for(settings),
        geocoder=geocoder_for(settings, engine),
    )


def build_stream_graph(
    settings: Settings, broker_url: str, runtime: Runtime, *, single_record_batches: bool
) -> StreamGraph:
    graph = create_app(settings, broker_url, single_record_batches=single_record_batches)
    for flow in FLOWS:
        flow.register(graph, runtime)
    return graph
