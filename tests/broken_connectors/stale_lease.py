"""Ignores lease expiry: a lapsed lease still reads as a running owner (available / backend)."""

from __future__ import annotations

import dataclasses

from modeldconn import Connector
from modeldconn import probe as _probe


class IgnoresStaleLeases(Connector):
    def detect(self) -> _probe.ProbeStatus:
        st = super().detect()
        if st.state in (_probe.ProbeState.STALE, _probe.ProbeState.NOT_INSTALLED) and st.instance == "":
            return st
        if st.state is _probe.ProbeState.STALE:
            return dataclasses.replace(st, state=_probe.ProbeState.RUNNING, backend="llama")
        return st


def make() -> Connector:
    return IgnoresStaleLeases()
