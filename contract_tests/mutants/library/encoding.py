"""Broken connectors that send something other than what the caller asked for."""

from __future__ import annotations

from typing import Any

from modeld_contract.mutants.hooks import HookedConnector
from modeld_contract.mutants.library._registry import mutant

_WITH_MODEL = ("OpenSession", "Describe", "LoadModel", "Embed")


@mutant("enc_config_numctx_dropped", "encoding")
class ConfigNumCtxDropped(HookedConnector):
    """Config.NumCtx is never sent (the daemon picks its own window)."""

    def request(self, method: str, msg: Any) -> Any:
        if method in _WITH_MODEL:
            msg.config.NumCtx = 0
        return msg


@mutant("enc_decode_zero_temperature_dropped", "encoding")
class DecodeZeroTemperatureDropped(HookedConnector):
    """DecodeConfig.Temperature is left out when it is zero (greedy becomes the daemon's default)."""

    def request(self, method: str, msg: Any) -> Any:
        if method == "Decode" and msg.config.HasField("Temperature") and msg.config.Temperature == 0:
            msg.config.ClearField("Temperature")
        return msg


@mutant("enc_decode_maxtokens_off_by_one", "encoding")
class DecodeMaxTokensOffByOne(HookedConnector):
    """DecodeConfig.MaxTokens is sent one too high."""

    def request(self, method: str, msg: Any) -> Any:
        if method == "Decode" and msg.config.MaxTokens:
            msg.config.MaxTokens += 1
        return msg


@mutant("enc_modelref_digest_dropped", "encoding")
class ModelRefDigestDropped(HookedConnector):
    """The model reference's digest is never sent."""

    def request(self, method: str, msg: Any) -> Any:
        if method in _WITH_MODEL:
            msg.digest = ""
        return msg


@mutant("enc_modelref_path_dropped", "encoding")
class ModelRefPathDropped(HookedConnector):
    """The model reference's path is never sent (the daemon resolves the name in its store)."""

    def request(self, method: str, msg: Any) -> Any:
        if method in _WITH_MODEL:
            msg.path = ""
        return msg


@mutant("enc_modelref_adapters_dropped", "encoding")
class ModelRefAdaptersDropped(HookedConnector):
    """LoRA adapters of the model reference are never sent."""

    def request(self, method: str, msg: Any) -> Any:
        if method in ("OpenSession", "Describe", "LoadModel"):
            del msg.adapters[:]
        return msg


@mutant("enc_prefix_manifest_dropped", "encoding")
class PrefixManifestDropped(HookedConnector):
    """Prefix and suffix manifests are sent as the zero manifest."""

    def request(self, method: str, msg: Any) -> Any:
        if method == "EnsurePrefix":
            msg.prefix.ClearField("Manifest")
        elif method == "PrefillSuffix":
            msg.suffix.ClearField("Manifest")
        return msg


@mutant("enc_suffix_text_stripped", "encoding")
class SuffixTextStripped(HookedConnector):
    """The suffix text is sent with its surrounding whitespace stripped."""

    def request(self, method: str, msg: Any) -> Any:
        if method == "PrefillSuffix":
            msg.suffix.Text = msg.suffix.Text.strip()
        return msg


@mutant("enc_load_expected_generation_dropped", "encoding")
class LoadExpectedGenerationDropped(HookedConnector):
    """LoadModel's expected generation is never sent (every load is unconditional)."""

    def request(self, method: str, msg: Any) -> Any:
        if method == "LoadModel":
            msg.expected_generation = 0
        return msg


@mutant("enc_unload_generation_zeroed", "encoding")
class UnloadGenerationZeroed(HookedConnector):
    """UnloadModel's expected generation is never sent (every unload is unconditional)."""

    def request(self, method: str, msg: Any) -> Any:
        if method == "UnloadModel":
            msg.expected_generation = 0
        return msg


@mutant("enc_embed_text_truncated", "encoding")
class EmbedTextTruncated(HookedConnector):
    """Embed sends only the first four characters of the text (a fixed-size buffer)."""

    def request(self, method: str, msg: Any) -> Any:
        if method == "Embed":
            msg.text = msg.text[:4]
        return msg


@mutant("enc_fence_body_dropped", "encoding")
class FenceBodyDropped(HookedConnector):
    """The owner instance is left out of the request bodies (the metadata fence is still sent)."""

    def request(self, method: str, msg: Any) -> Any:
        if "owner_instance_id" in type(msg).DESCRIPTOR.fields_by_name:
            msg.owner_instance_id = ""
        return msg
