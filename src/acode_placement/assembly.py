"""Assembly: the engine `PlacementEngine.default` gives, wired from the settings.

Probers (local, SSH, EC2), the capability cache, discovery, the EC2 resolver with
the shipped catalog, the history and the reservation store. Heavy libraries load
here on first use, never on `import acode_placement`. Nothing decides here.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from acode_placement.discovery.cache import CapabilityCache
from acode_placement.discovery.cache import default_path as default_cache_path
from acode_placement.discovery.probes import DeferredProber, LocalProbe, Prober
from acode_placement.discovery.service import Discovery
from acode_placement.ec2.catalog import Catalog
from acode_placement.ec2.fleet import Ec2Prober, Ec2Resolver
from acode_placement.models import HistoryDurability, PlacementSettings, TargetKind
from acode_placement.strategies import StrategyRegistry

if TYPE_CHECKING:
    from acode_placement.engine import PlacementEngine


def default_engine(
    engine: type[PlacementEngine], settings: PlacementSettings | None = None
) -> PlacementEngine:
    """An `engine` (the class, or a subclass) with everything the settings ask for."""
    # SQLAlchemy loads here, not on import; asyncssh and boto3 on first use.
    from acode_placement.ec2.api import Ec2Api  # noqa: PLC0415
    from acode_placement.history.reservations import ReservationStore  # noqa: PLC0415
    from acode_placement.history.store import HistoryStore  # noqa: PLC0415

    settings = settings or PlacementSettings()
    api = Ec2Api(settings.ec2_api, settings.probe_timeout)
    catalog = Catalog.shipped()
    probers: dict[TargetKind, Prober] = {
        TargetKind.EC2: Ec2Prober(api, catalog),
        **host_probers(settings),
    }
    discovery = Discovery(
        probers,
        CapabilityCache(default_cache_path()),
        ttl=timedelta(minutes=settings.cache_minutes),
        concurrency=settings.discovery_concurrency,
        fact_timeout=settings.probe_timeout,
    )
    history = None
    if settings.history_enabled:
        history = HistoryStore(
            settings.history,
            retention_days=settings.history_retention_days,
            retention_count=settings.history_retention_count,
            durable=settings.history_durability is HistoryDurability.DURABLE,
        )
    return engine(
        StrategyRegistry.default(),
        discovery,
        Ec2Resolver(api, catalog),
        history=history,
        reservations=ReservationStore(settings.history),
        reservation_grace=timedelta(minutes=settings.reservation_grace_minutes),
    )


def host_probers(settings: PlacementSettings) -> dict[TargetKind, Prober]:
    """The probers of machines (this one, and SSH hosts: asyncssh loads on first
    use), as the settings configure them."""
    return {
        TargetKind.LOCAL: LocalProbe(settings.probe_timeout, facts=settings.facts),
        TargetKind.SSH: DeferredProber(lambda: _ssh_prober(settings)),
    }


def _ssh_prober(settings: PlacementSettings) -> Prober:
    from acode_placement.discovery.ssh import SshProbe  # noqa: PLC0415  (imports asyncssh)

    return SshProbe(
        settings.probe_timeout,
        Path(settings.known_hosts).expanduser(),
        settings.accept_new_host_keys,
        facts=settings.facts,
    )
