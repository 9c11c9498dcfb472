"""Fast unit tests: model routing, stream tokens, the client fold rule, settings."""

from __future__ import annotations

import pytest
from pydantic import SecretStr

from copilot.auth import (
    Principal,
    issue_stream_token,
    key_ref,
    stream_key_valid,
    verify_stream_token,
)
from copilot.config import Settings, SettingsError, parse_hex_key
from copilot.errors import InvalidRequest, NotFound, Unauthorized
from copilot.events.fold import fold_events
from copilot.providers.registry import route_model

KEY = bytes(range(32))


@pytest.mark.parametrize(
    ("model", "provider", "expected"),
    [
        ("claude-sonnet-4", None, ("anthropic", "claude-sonnet-4")),
        ("gpt-4o", None, ("openai", "gpt-4o")),
        ("o3-mini", None, ("openai", "o3-mini")),
        ("o4-mini", None, ("openai", "o4-mini")),
        ("o1", None, ("openai", "o1")),
        ("ollama:llama3.2", None, ("ollama", "llama3.2")),
        ("backend:copilot", None, ("copilot-backend", "copilot")),
        ("mistral-large", None, ("openai", "mistral-large")),  # DEFAULT_PROVIDER
        ("my-model", "anthropic", ("anthropic", "my-model")),
    ],
)
def test_model_routing(model: str, provider: str | None, expected: tuple[str, str]) -> None:
    settings = Settings(DEFAULT_PROVIDER="openai", COPILOT_BACKEND_URL="http://upstream.test")
    route = route_model(model, provider, settings)
    assert (route.provider, route.provider_model) == expected
    assert route.model == model


def test_routing_rejects_unknown_provider_and_empty_names() -> None:
    with pytest.raises(InvalidRequest):
        route_model("x", "nope", Settings())
    with pytest.raises(InvalidRequest):
        route_model("ollama:", None, Settings())
    for model, provider in (("backend:x", None), ("x", "copilot-backend")):
        with pytest.raises(InvalidRequest, match="COPILOT_BACKEND_URL"):
            route_model(model, provider, Settings(COPILOT_BACKEND_URL=None))


def test_stream_token_binds_run_and_expires() -> None:
    token = issue_stream_token(KEY, tenant_id="t", user_id="u", run_id="r1", ttl_s=60,
                               key_ref="key_1")  # fmt: skip
    principal = verify_stream_token(KEY, token, run_id="r1", max_ttl_s=900)
    assert (principal.tenant_id, principal.user_id, principal.run_id) == ("t", "u", "r1")
    assert principal.key_id == "key_1"  # checked against the key's revocation on each use
    with pytest.raises(NotFound):
        verify_stream_token(KEY, token, run_id="r2", max_ttl_s=900)
    with pytest.raises(Unauthorized):
        verify_stream_token(bytes(32), token, run_id="r1", max_ttl_s=900)
    old = issue_stream_token(KEY, tenant_id="t", user_id="u", run_id="r1", ttl_s=60,
                             key_ref="key_1", now=0)  # fmt: skip
    with pytest.raises(Unauthorized, match="expired"):
        verify_stream_token(KEY, old, run_id="r1", max_ttl_s=900)
    with pytest.raises(Unauthorized):
        verify_stream_token(KEY, "garbage", run_id="r1", max_ttl_s=900)


def test_fold_applies_turn_reset_and_snapshot() -> None:
    events = [
        {"type": "start", "seq": 1},
        {"type": "content", "seq": 2, "turn": 1, "data": "Hel"},
        {"type": "turn_reset", "seq": 3, "turn": 1, "attempt": 2},
        {"type": "content", "seq": 4, "turn": 1, "data": "Hello"},
        {"type": "content", "seq": 5, "turn": 2, "data": " world"},
        {"type": "done", "seq": 6, "data": {"status": "completed"}},
    ]
    folded = fold_events(events)
    assert (folded.content, folded.status, folded.last_seq) == ("Hello world", "completed", 6)
    snap = fold_events(
        [{"type": "snapshot", "seq": 9, "data": {"content": "X", "status": "running"}}]
    )
    assert (snap.content, snap.last_seq) == ("X", 9)


def test_hex_keys_are_validated_with_a_helpful_message() -> None:
    with pytest.raises(SettingsError, match="64 hex"):
        parse_hex_key(SecretStr("abc"), "ENCRYPTION_KEY")
    with pytest.raises(SettingsError, match="not set"):
        parse_hex_key(None, "ENCRYPTION_KEY")
    assert parse_hex_key(SecretStr("00" * 32), "X") == bytes(32)


def test_stream_tokens_follow_their_key() -> None:
    admin = Settings(COPILOT_API_KEY="a" * 40)
    ref = key_ref(admin, Principal(kind="admin", tenant_id="t", user_id=None))
    assert ref.startswith("admin:")
    assert "a" * 8 not in ref
    assert stream_key_valid(admin, ref, issued_key_live=False)
    rotated = Settings(COPILOT_API_KEY="b" * 40)
    assert not stream_key_valid(rotated, ref, issued_key_live=False)  # rotation ends them
    issued = key_ref(admin, Principal(kind="user", tenant_id="t", user_id="u", key_id="key_9"))
    assert issued == "key_9"
    assert stream_key_valid(admin, issued, issued_key_live=True)
    assert not stream_key_valid(admin, issued, issued_key_live=False)  # revoked
    assert not stream_key_valid(admin, "dev", issued_key_live=False)  # dev token, secured server
    assert not stream_key_valid(admin, None, issued_key_live=True)
