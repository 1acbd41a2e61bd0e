"""Broken connectors that judge the lease's freshness wrongly (offline: available / backend, and the
decision before every lease-resolved call)."""

from __future__ import annotations

from modeld_contract.mutants.hooks import OfflineDecision
from modeld_contract.mutants.library._registry import mutant

from modeldconn import lease as _lease

_S = 1_000_000_000


@mutant("lease_stale_read_live", "lease freshness")
class StaleReadLive(OfflineDecision):
    """Expiry is never checked: any lease that parses names a running owner."""

    def live(self, rec: _lease.LeaseRecord, now_ns: int) -> bool:
        return True


@mutant("lease_one_second_grace", "lease freshness")
class OneSecondGrace(OfflineDecision):
    """A lease stays live for one second past its expiry (clock-skew "tolerance")."""

    def live(self, rec: _lease.LeaseRecord, now_ns: int) -> bool:
        return now_ns < _lease.expires_at(rec).unix_ns + _S


@mutant("lease_fraction_ignored", "lease freshness")
class FractionIgnored(OfflineDecision):
    """renewed_at is read to the whole second (its fraction dropped)."""

    def live(self, rec: _lease.LeaseRecord, now_ns: int) -> bool:
        renewed = rec.renewed_at.unix_ns
        return now_ns < renewed - renewed % _S + rec.ttl_ns


@mutant("lease_zone_ignored", "lease freshness")
class ZoneIgnored(OfflineDecision):
    """The zone offset of renewed_at is ignored (its wall-clock digits are read as UTC)."""

    def live(self, rec: _lease.LeaseRecord, now_ns: int) -> bool:
        offset = rec.renewed_at.offset_s * _S
        return now_ns < rec.renewed_at.unix_ns + offset + rec.ttl_ns


@mutant("lease_expiry_from_acquired", "lease freshness")
class ExpiryFromAcquired(OfflineDecision):
    """Expiry is computed from acquired_at instead of renewed_at."""

    def live(self, rec: _lease.LeaseRecord, now_ns: int) -> bool:
        return now_ns < rec.acquired_at.unix_ns + rec.ttl_ns


@mutant("lease_serveable_no_grace", "lease freshness")
class ServeableNoGrace(OfflineDecision):
    """serveable_backend() forgets the last live backend as soon as the lease stops reading live."""

    def serveable_backend(self, *, now: float | None = None) -> str:
        return self.backend()
