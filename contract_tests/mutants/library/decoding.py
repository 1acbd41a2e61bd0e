"""Broken connectors that return something other than what the daemon answered."""

from __future__ import annotations

from typing import Any

from modeld_contract.mutants.hooks import HookedConnector
from modeld_contract.mutants.library._registry import mutant

from modeldconn.wire import errors as _errors


@mutant("dec_status_last_error_lost", "decoding")
class StatusLastErrorLost(HookedConnector):
    """Status loses last_error on the way back."""

    def reply(self, method: str, msg: Any) -> Any:
        if method == "Status":
            msg.last_error = ""
        return msg


@mutant("dec_status_generation_lost", "decoding")
class StatusGenerationLost(HookedConnector):
    """Status reports the active model without its generation."""

    def reply(self, method: str, msg: Any) -> Any:
        if method == "Status" and msg.HasField("active"):
            msg.active.generation = 0
        return msg


@mutant("dec_prefix_dropped_zero", "decoding")
class PrefixDroppedZero(HookedConnector):
    """EnsurePrefix reports DroppedTokens 0 whatever the daemon dropped."""

    def reply(self, method: str, msg: Any) -> Any:
        if method == "EnsurePrefix":
            msg.DroppedTokens = 0
        return msg


@mutant("dec_suffix_resident_is_prefix", "decoding")
class SuffixResidentIsPrefix(HookedConnector):
    """PrefillSuffix reports the prefix count as the resident count."""

    def reply(self, method: str, msg: Any) -> Any:
        if method == "PrefillSuffix":
            msg.ResidentTokens = msg.PrefixTokens
        return msg


@mutant("dec_describe_contexts_swapped", "decoding")
class DescribeContextsSwapped(HookedConnector):
    """Describe returns effective_context and model_max_context swapped."""

    def reply(self, method: str, msg: Any) -> Any:
        if method == "Describe":
            msg.effective_context, msg.model_max_context = msg.model_max_context, msg.effective_context
        return msg


@mutant("dec_embed_rounded", "decoding")
class EmbedRounded(HookedConnector):
    """Embedding values come back rounded to three decimals."""

    def reply(self, method: str, msg: Any) -> Any:
        if method == "Embed":
            rounded = [round(x, 3) for x in msg.vector]
            del msg.vector[:]
            msg.vector.extend(rounded)
        return msg


@mutant("dec_node_model_type_lost", "decoding")
class NodeModelTypeLost(HookedConnector):
    """ListModels returns the models without their type."""

    def reply(self, method: str, msg: Any) -> Any:
        if method == "ListModels":
            for m in msg.models:
                m.type = ""
        return msg


@mutant("dec_disk_total_from_used", "decoding")
class DiskTotalFromUsed(HookedConnector):
    """DiskStats reads total_bytes from the used_bytes field."""

    def reply(self, method: str, msg: Any) -> Any:
        if method == "DiskStats":
            msg.total_bytes = msg.used_bytes
        return msg


@mutant("dec_snapshot_state_id_lost", "decoding")
class SnapshotStateIdLost(HookedConnector):
    """Snapshot returns the counts but loses the state_id of the stored native state."""

    def reply(self, method: str, msg: Any) -> Any:
        if method == "Snapshot":
            msg.state_id = ""
        return msg


@mutant("dec_explain_available_is_num_ctx", "decoding")
class ExplainAvailableIsNumCtx(HookedConnector):
    """ExplainContext reports the whole window as available."""

    def reply(self, method: str, msg: Any) -> Any:
        if method == "ExplainContext":
            msg.AvailableTokens = msg.NumCtx
        return msg


@mutant("dec_overflow_detail_lost", "decoding")
class OverflowDetailLost(HookedConnector):
    """A context_overflow loses its detail (stage and counts): the bare sentinel is raised."""

    def error(self, method: str, exc: Exception) -> Exception:
        if isinstance(exc, _errors.ContextOverflow) and exc.overflow_detail() is not None:
            return _errors.ContextOverflow()
        return exc

    def chunk(self, method: str, msg: Any) -> Any:
        if method == "Decode" and msg.error_token == "context_overflow":
            msg.ClearField("error_detail")
        return msg


@mutant("dec_manifest_reason_duplicated", "decoding")
class ManifestReasonDuplicated(HookedConnector):
    """A manifest mismatch is re-wrapped: its text carries the sentinel text twice."""

    def error(self, method: str, exc: Exception) -> Exception:
        if isinstance(exc, _errors.ManifestMismatch) and not isinstance(exc, _Rewrapped):
            return _Rewrapped(exc.reason)
        return exc


class _Rewrapped(_errors.ManifestMismatch):
    def __str__(self) -> str:
        return f"{self.sentinel.text}: {super().__str__()}"
