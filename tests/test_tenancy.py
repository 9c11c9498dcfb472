"""Identity, tenancy and abuse limits over every route that takes an id."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import asyncpg
import httpx
import pytest
from redis.asyncio import Redis

from copilot.embedded import free_port
from copilot.events.fold import fold_events
from copilot.ratelimit import RateLimiter, client_ip, parse_proxies
from tests.conftest import Services, Stack, running_stack, scenario
from tests.fakes.provider import FakeProviderServer
from tests.live import LiveRun

ADMIN = "admin-canary-0f3b9c2e71d54a8b"


@pytest.fixture(scope="module")
def secure(services: Services, fake_provider: FakeProviderServer) -> Iterator[Stack]:
    with running_stack(services, fake_provider, COPILOT_API_KEY=ADMIN) as running:
        yield running


@dataclass
class World:
    api: str
    service_a: str
    service_b: str
    user_a1: str
    user_a2: str
    user_b1: str
    user_b1_id: str


def _h(key: str) -> dict[str, str]:
    return {"x-api-key": key}


@pytest.fixture(scope="module")
def world(secure: Stack) -> World:
    with httpx.Client(base_url=secure.api_url, timeout=30) as c:

        def issue(key: str, body: dict[str, str]) -> str:
            resp = c.post("/api/validate-key/generate", json=body, headers=_h(key))
            assert resp.status_code == 200, resp.text
            value: str = resp.json()["apiKey"]
            assert value.startswith("sk-copilot-")
            return value

        sa = issue(ADMIN, {"tenantName": "Acme"})
        sb = issue(ADMIN, {"tenantName": "Globex"})
        return World(
            api=secure.api_url,
            service_a=sa,
            service_b=sb,
            user_a1=issue(sa, {"userId": "alice"}),
            user_a2=issue(sa, {"userId": "bob"}),
            user_b1=issue(sb, {"userId": "alice"}),  # same user id, other tenant
            user_b1_id="alice",
        )


async def test_auth_is_required_and_keys_are_checked(world: World) -> None:
    async with httpx.AsyncClient(base_url=world.api) as c:
        assert (await c.get("/api/copilot/chats")).status_code == 401
        bad = await c.get("/api/copilot/chats", headers=_h("sk-copilot-nope"))
        assert bad.status_code == 401
        assert bad.json()["code"] == "unauthorized"
        health = await c.get("/api/health")  # health stays open for load balancers
        assert health.status_code == 200


async def test_user_b_and_tenant_b_get_404_for_every_object_of_a(
    world: World, secure: Stack
) -> None:
    tool = {"name": "deploy", "inputSchema": {"type": "object"}, "requiresConfirmation": True}
    key = scenario(
        secure.provider,
        [{"tool_calls": [{"name": "deploy", "arguments": {}}]}, {"text": "as you wish"}],
    )
    async with httpx.AsyncClient(base_url=world.api, timeout=30, headers=_h(world.user_a1)) as a:
        live = await LiveRun.start(a, {"message": key, "tools": [tool]})
        await live.event("tool_status", status="awaiting_confirmation")
        run_id = live.run_id
        chat_id = live.frames[0].data["data"]["chatId"]
        call_id = (await live.event("tool_call")).data["data"]["id"]
        token = live.headers["x-stream-token"]
        assert (await a.get(f"/api/copilot/chats/{chat_id}")).status_code == 200

        async with httpx.AsyncClient(base_url=world.api, timeout=30) as other:
            own_b = await LiveRun.start(other, {"message": "hello"}, headers=_h(world.user_b1))
            b_token = own_b.headers["x-stream-token"]
            for intruder in (world.user_a2, world.user_b1, world.service_b):
                h = _h(intruder)
                q = {"userId": "alice"} if intruder == world.service_b else {}
                checks = [
                    await other.get(f"/api/copilot/chats/{chat_id}", headers=h, params=q),
                    await other.delete(f"/api/copilot/chats/{chat_id}", headers=h, params=q),
                    await other.get(f"/api/copilot/runs/{run_id}", headers=h, params=q),
                    await other.get(f"/api/copilot/runs/{run_id}/events", headers=h, params=q),
                    await other.post(f"/api/copilot/runs/{run_id}/abort", headers=h, params=q),
                    await other.get(f"/api/v1/copilot/runs/{run_id}", headers=h, params=q),
                    await other.post("/api/copilot/confirm", headers=h,
                                     json={"toolCallId": call_id, "status": "accepted", **q}),
                    await other.post("/api/get-context-usage", headers=h,
                                     json={"chatId": chat_id, **q}),
                ]  # fmt: skip
                if intruder == world.service_b:
                    checks.append(await other.post(
                        "/api/tools/mark-complete", headers=h,
                        json={"id": call_id, "name": "deploy", "status": 200}))  # fmt: skip
                for resp in checks:
                    assert resp.status_code == 404, (intruder[-4:], resp.request.url, resp.text)
                listed = await other.get("/api/copilot/runs", headers=h, params=q)
                assert run_id not in [r["runId"] for r in listed.json()["runs"]]
            # a stream token opens its own run only
            for t in (b_token, token + "x"):
                resp = await other.get(f"/api/copilot/runs/{run_id}/events", params={"token": t})
                assert resp.status_code in (401, 404)
            await own_b.close()

        # the owner still can do all of it
        ok = await a.post(
            "/api/copilot/confirm", json={"toolCallId": call_id, "status": "rejected"}
        )
        assert ok.status_code == 200
        await live.finished()


async def _ask(
    c: httpx.AsyncClient, method: str, url: str, key: str | None, params: dict[str, str]
) -> httpx.Response:
    return await c.request(method, url, headers=_h(key) if key else {}, params=params)


async def test_owned_object_routes_check_auth_then_user_then_owner(secure: Stack) -> None:
    """Every route that loads an owned chat or run answers in one order: 401 (no key), 400 (a
    malformed query), 403 (another user named) or 400 (no user named), and only then 404,
    with the contract's body, whether the object is missing or another owner's."""
    service = _fresh_tenant(secure.api_url)
    async with httpx.AsyncClient(base_url=secure.api_url, timeout=30) as c:
        issued = await c.post("/api/validate-key/generate", headers=_h(service),
                              json={"userId": "dora"})  # fmt: skip
        user = issued.json()["apiKey"]
        reply = scenario(secure.provider, [{"text": "mine"}])
        dora = await _chat_to_done(c, user, {"message": reply})
        chat_id = dora.frames[0].data["data"]["chatId"]
        missing_chat, missing_run = f"nochat-{uuid.uuid4().hex[:8]}", f"run_{uuid.uuid4().hex}"
        routes = [
            ("GET", "/api/copilot/chats/{chat}", "chat"),
            ("DELETE", "/api/copilot/chats/{chat}", "chat"),
            ("GET", "/api/copilot/runs/{run}", "run"),
            ("GET", "/api/copilot/runs/{run}/events", "run"),
            ("POST", "/api/copilot/runs/{run}/abort", "run"),
            ("GET", "/api/v1/copilot/runs/{run}", "run"),
        ]
        for method, template, kind in routes:
            url = template.format(chat=missing_chat, run=missing_run)
            where = f"{method} {template}"
            assert (await _ask(c, method, url, None, {})).status_code == 401, where
            long_tenant = await _ask(c, method, url, user, {"tenantId": "t" * 65})
            assert long_tenant.status_code == 400, where
            assert long_tenant.json()["code"] == "invalid_request", where
            mismatch = await _ask(c, method, url, user, {"userId": "erin"})
            assert mismatch.status_code == 403, where
            assert mismatch.json()["code"] == "user_mismatch", where
            unnamed = await _ask(c, method, url, service, {})
            assert unnamed.status_code == 400, where
            assert unnamed.json()["code"] == "invalid_request", where
            body = {"success": False, "error": f"{kind} not found", "code": f"{kind}_not_found"}
            for key, params in ((user, {}), (service, {"userId": "dora"})):
                missing = await _ask(c, method, url, key, params)
                assert (missing.status_code, missing.json()) == (404, body), where
            # Dora's own objects, asked for as another user of her tenant: the same 404.
            owned = template.format(chat=chat_id, run=dora.run_id)
            theirs = await _ask(c, method, owned, service, {"userId": "erin"})
            assert (theirs.status_code, theirs.json()) == (404, body), where
        # A chat named in the body: the same rule, after the body is validated.
        usage = await c.post("/api/get-context-usage", headers=_h(user), json={})
        assert usage.status_code == 400
        usage = await c.post("/api/get-context-usage", headers=_h(user),
                             json={"chatId": chat_id, "userId": "erin"})  # fmt: skip
        assert usage.status_code == 403
        usage = await c.post("/api/get-context-usage", headers=_h(service),
                             json={"chatId": chat_id, "userId": "erin"})  # fmt: skip
        assert (usage.status_code, usage.json()) == (
            404, {"success": False, "error": "chat not found", "code": "chat_not_found"},
        )  # fmt: skip
        # And the owner gets hers (the dependency loads them in the request's own session:
        # the delete is committed with it).
        snapshot = await c.get(f"/api/copilot/runs/{dora.run_id}", headers=_h(user))
        assert snapshot.status_code == 200
        got = await c.get(f"/api/copilot/chats/{chat_id}", headers=_h(user))
        assert [m["role"] for m in got.json()["messages"]] == ["user", "assistant"]
        done = await c.post(f"/api/copilot/runs/{dora.run_id}/abort", headers=_h(user))
        assert (done.status_code, done.json()["code"]) == (409, "run_finished")
        deleted = await c.delete(f"/api/copilot/chats/{chat_id}", headers=_h(user))
        assert deleted.json() == {"success": True, "chatId": chat_id}
        gone = await c.get(f"/api/copilot/chats/{chat_id}", headers=_h(user))
        assert gone.status_code == 404


async def test_user_keys_are_bound_to_their_user(world: World) -> None:
    async with httpx.AsyncClient(base_url=world.api, timeout=30) as c:
        mismatch = await c.get(
            "/api/copilot/chats", headers=_h(world.user_a1), params={"userId": "bob"}
        )
        assert mismatch.status_code == 403
        assert mismatch.json()["code"] == "user_mismatch"
        chat = await c.post("/api/copilot/chat", headers=_h(world.user_a1),
                            json={"message": "hi", "userId": "mallory"})  # fmt: skip
        assert chat.status_code == 403
        issue = await c.post("/api/validate-key/generate", headers=_h(world.user_a1),
                             json={"userId": "x"})  # fmt: skip
        assert issue.status_code == 403
        mark = await c.post("/api/tools/mark-complete", headers=_h(world.user_a1),
                            json={"id": "tc_x", "name": "x", "status": 200})  # fmt: skip
        assert mark.status_code == 403
        needs_user = await c.get("/api/copilot/chats", headers=_h(world.service_a))
        assert needs_user.status_code == 400
        for admin_route in ("/api/stats", "/metrics"):
            assert (await c.get(admin_route, headers=_h(world.service_a))).status_code == 404
            assert (await c.get(admin_route, headers=_h(ADMIN))).status_code == 200


async def test_sims_key_routes_in_sims_shapes(world: World) -> None:
    """What Sim's key routes send and read (its app/api/copilot/api-keys and
    app/api/mcp/copilot routes at 190f12fd77), with its service key acting for a Sim user."""
    sim = _h(world.service_a)
    async with httpx.AsyncClient(base_url=world.api, timeout=30) as c:

        async def sims_list(headers: dict[str, str]) -> list[dict[str, Any]]:
            resp = await c.post("/api/validate-key/get-api-keys", headers=headers,
                                json={"userId": "carol"})  # fmt: skip
            assert resp.status_code == 200, resp.text
            listed: list[dict[str, Any]] = resp.json()  # a bare array
            return listed

        async def validate(target: str, headers: dict[str, str] = sim) -> httpx.Response:
            return await c.post("/api/validate-key", headers=headers,
                                json={"targetApiKey": target})  # fmt: skip

        issued = (await c.post("/api/validate-key/generate", headers=sim,
                               json={"userId": "carol", "name": "laptop"})).json()  # fmt: skip
        key, key_id = issued["apiKey"], issued["id"]
        [entry] = await sims_list(sim)
        assert set(entry) == {"id", "apiKey", "name", "createdAt", "lastUsed"}
        assert (entry["id"], entry["name"], entry["lastUsed"]) == (key_id, "laptop", None)
        assert entry["apiKey"].startswith("sk-copilot-")
        assert entry["apiKey"].endswith(key[-4:])
        assert key[len("sk-copilot-") : -4] not in entry["apiKey"]  # masked
        assert entry["createdAt"]

        # Sim's MCP server asks whose key it was given; that is a use of the key.
        valid = await validate(key)
        assert valid.status_code == 200, valid.text
        assert (valid.json()["ok"], valid.json()["userId"]) == (True, "carol")
        [entry] = await sims_list(sim)
        assert entry["lastUsed"] is not None
        assert (await c.get("/api/copilot/chats", headers=_h(key))).status_code == 200
        assert (await sims_list(sim))[0]["lastUsed"] == entry["lastUsed"]  # once a minute
        for stranger in ("sk-copilot-nope", world.user_b1, world.service_a):
            assert (await validate(stranger)).status_code == 401  # Sim: "invalid key"
        assert (await validate(key, _h(world.user_a1))).status_code == 403

        # Another tenant's Sim sees none of it; deleting names the user and Sim's apiKeyId.
        assert await sims_list(_h(world.service_b)) == []
        for headers, user in ((_h(world.service_b), "carol"), (sim, "alice")):
            refused = await c.post("/api/validate-key/delete", headers=headers,
                                   json={"userId": user, "apiKeyId": key_id})  # fmt: skip
            assert refused.status_code == 404
        deleted = await c.post("/api/validate-key/delete", headers=sim,
                               json={"userId": "carol", "apiKeyId": key_id})  # fmt: skip
        assert deleted.status_code == 200
        assert deleted.json()["success"] is True
        assert await sims_list(sim) == []
        assert (await validate(key)).status_code == 401
        # Without a userId, native clients keep their shape.
        native = (await c.post("/api/validate-key/get-api-keys", headers=sim)).json()
        assert native["success"] is True
        assert {k["userId"] for k in native["keys"]} == {"alice", "bob"}


async def test_key_management_rights_and_rotation(world: World) -> None:
    async with httpx.AsyncClient(base_url=world.api, timeout=30) as c:
        listed_a = await c.post("/api/validate-key/get-api-keys", headers=_h(world.service_a))
        users_a = {k["userId"] for k in listed_a.json()["keys"]}
        assert users_a == {"alice", "bob"}
        assert all("apiKey" not in k for k in listed_a.json()["keys"])
        listed_b = await c.post("/api/validate-key/get-api-keys", headers=_h(world.service_b))
        b_ids = [k["id"] for k in listed_b.json()["keys"]]
        # A cannot revoke B's keys
        cross = await c.post("/api/validate-key/delete", headers=_h(world.service_a),
                             json={"id": b_ids[0]})  # fmt: skip
        assert cross.status_code == 404
        # rotation: a second service key for the same tenant name joins the same tenant
        rotated = (await c.post("/api/validate-key/generate", headers=_h(ADMIN),
                                json={"tenantName": "Acme"})).json()  # fmt: skip
        first = (await c.post("/api/validate-key/get-api-keys", headers=_h(ADMIN))).json()["keys"]
        acme = {k["tenantId"] for k in first if k["name"] == "Acme"}
        assert len(acme) == 1
        old_id = next(k["id"] for k in first if k["name"] == "Acme" and k["id"] != rotated["id"])
        revoked = await c.post("/api/validate-key/delete", headers=_h(ADMIN), json={"id": old_id})
        assert revoked.status_code == 200
        assert (await c.get("/api/copilot/chats", headers=_h(world.service_a),
                            params={"userId": "alice"})).status_code == 401  # fmt: skip
        still = await c.get("/api/copilot/chats", headers=_h(rotated["apiKey"]),
                            params={"userId": "alice"})  # fmt: skip
        assert still.status_code == 200  # the tenant and its chats survived the rotation


async def test_canary_secrets_never_reach_the_logs(world: World, secure: Stack) -> None:
    async with httpx.AsyncClient(base_url=world.api, timeout=30, headers=_h(world.user_a1)) as a:
        key = scenario(secure.provider, [{"text": "fine"}])
        live = await LiveRun.start(a, {"message": key})
        await live.finished()
        token = live.headers["x-stream-token"]
        async with httpx.AsyncClient(base_url=world.api) as plain:
            resp = await plain.get(f"/api/copilot/runs/{live.run_id}/events",
                                   params={"token": token, "after": 0})  # fmt: skip
            assert resp.status_code == 200
    logs = "".join(p.read_text(errors="replace") for p in secure.log_dir.glob("*.log"))
    assert "token=[redacted]" in logs
    for secret in (ADMIN, token, world.user_a1, world.service_a):
        assert secret not in logs


@pytest.fixture(scope="module")
def limited(services: Services, fake_provider: FakeProviderServer) -> Iterator[Stack]:
    with running_stack(
        services, fake_provider, RATE_LIMIT_READS="100", RATE_LIMIT_STARTS_PER_USER="3",
        TRUSTED_PROXIES="127.0.0.1",
    ) as running:  # fmt: skip
        yield running


async def test_rate_limit_is_atomic_under_250_concurrent_requests(limited: Stack) -> None:
    limits = httpx.Limits(max_connections=300)
    async with httpx.AsyncClient(base_url=limited.api_url, timeout=60, limits=limits) as c:
        results = await asyncio.gather(
            *(c.get("/api/copilot/chats", headers={"x-forwarded-for": "203.0.113.7"})
              for _ in range(250))
        )  # fmt: skip
    codes = [r.status_code for r in results]
    assert codes.count(200) == 100
    assert codes.count(429) == 150
    refused = next(r for r in results if r.status_code == 429)
    assert refused.json()["code"] == "rate_limited"
    assert int(refused.headers["retry-after"]) >= 1
    assert "q=100" in refused.headers["ratelimit-policy"]
    assert "r=0" in refused.headers["ratelimit"]


async def test_run_starts_are_limited_per_user(limited: Stack) -> None:
    async with httpx.AsyncClient(base_url=limited.api_url, timeout=60) as c:
        codes = []
        for _ in range(4):
            key = scenario(limited.provider, [{"text": "x"}])
            body = {"message": key, "userId": "rl-user", "wait": False}
            resp = await c.post("/api/v1/copilot/chat", json=body)
            codes.append(resp.status_code)
    assert codes == [202, 202, 202, 429]


def test_forwarded_for_is_trusted_only_behind_trusted_proxies() -> None:
    trusted = parse_proxies("10.0.0.0/8, 127.0.0.1")
    assert client_ip("127.0.0.1", "203.0.113.7", trusted) == "203.0.113.7"
    assert client_ip("127.0.0.1", "198.51.100.1, 10.1.2.3", trusted) == "198.51.100.1"
    assert client_ip("198.51.100.9", "203.0.113.7", trusted) == "198.51.100.9"  # not a proxy
    assert client_ip("127.0.0.1", "203.0.113.7", []) == "127.0.0.1"


async def test_limiter_fails_open_when_redis_is_down() -> None:
    redis = Redis(host="127.0.0.1", port=free_port(), socket_connect_timeout=0.5)
    limiter = RateLimiter(redis, window_s=60)
    try:
        verdict = await limiter.hit("reads", "someone", 1)
    finally:
        await redis.aclose()
    assert verdict.allowed
    assert limiter.unavailable == 1


async def test_a_write_is_committed_before_its_answer_is_sent(world: World, secure: Stack) -> None:
    """The answer to a write must not leave before the write is committed: a client that gets
    200 for a revocation and uses the key at once must find it revoked. The key's row is held
    locked from outside, so the revocation's UPDATE waits at commit; the answer must wait too."""
    async with httpx.AsyncClient(base_url=world.api, timeout=30) as c:
        issued = (await c.post("/api/validate-key/generate", headers=_h(ADMIN),
                               json={"tenantName": "Initech"})).json()  # fmt: skip
        conn = await asyncpg.connect(secure.services.database_url)
        # a second connection watches: pg_stat_activity is snapshotted once per transaction
        watch = await asyncpg.connect(secure.services.database_url)
        try:
            lock = conn.transaction()
            await lock.start()
            await conn.execute("SELECT 1 FROM api_keys WHERE id = $1 FOR UPDATE", issued["id"])
            revoke = asyncio.create_task(
                c.post("/api/validate-key/delete", headers=_h(ADMIN), json={"id": issued["id"]})
            )
            deadline = asyncio.get_running_loop().time() + 20
            while not await watch.fetchval(
                "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
                " AND query LIKE 'UPDATE api_keys%'"
            ):
                assert asyncio.get_running_loop().time() < deadline, "the UPDATE never ran"
                assert not revoke.done(), revoke.result()
                await asyncio.sleep(0.02)
            # the UPDATE is blocked in the commit: no answer may have left yet
            done, _ = await asyncio.wait({revoke}, timeout=0.5)
            assert not done, "the revocation was answered before it was committed"
            await lock.rollback()
            assert (await revoke).status_code == 200
        finally:
            await conn.close()
            await watch.close()
        after = await c.get("/api/copilot/chats", headers=_h(issued["apiKey"]))
        assert after.status_code == 401


# --- issue 13: a chat id reused after a delete, stream tokens outside the default tenant -------


def _fresh_tenant(api: str) -> str:
    """A service key of a tenant of its own (the module's world keys get rotated above)."""
    with httpx.Client(base_url=api, timeout=30) as c:
        resp = c.post("/api/validate-key/generate", headers=_h(ADMIN),
                      json={"tenantName": f"t-{uuid.uuid4().hex[:10]}"})  # fmt: skip
        assert resp.status_code == 200, resp.text
        key: str = resp.json()["apiKey"]
        return key


async def _chat_to_done(c: httpx.AsyncClient, key: str, body: dict[str, Any]) -> LiveRun:
    live = await LiveRun.start(c, body, headers=_h(key))
    assert live.status_code == 200, live.body
    done = (await live.finished())[-1]
    assert done.data["data"]["status"] == "completed", live.types()
    return live


async def test_a_deleted_chat_id_reused_is_a_fresh_chat_for_its_owner_and_other_tenants(
    secure: Stack,
) -> None:
    """Alice's chat X, with a tool call, deleted; then Bob (another tenant) and Alice herself
    use X again: each gets a fresh chat that streams to done, and nothing of Alice's."""
    api = secure.api_url
    tenant_a, tenant_b = _fresh_tenant(api), _fresh_tenant(api)
    chat_x, chat_y = f"X-{uuid.uuid4().hex[:8]}", f"Y-{uuid.uuid4().hex[:8]}"
    secret = f"alice-secret-{uuid.uuid4().hex[:8]}"
    key = scenario(secure.provider, [
        {"tool_calls": [{"name": "echo", "arguments": {"text": secret}}]},
        {"text": f"the plan is {secret}"},
    ])  # fmt: skip
    redis = Redis.from_url(secure.services.redis_url)
    async with httpx.AsyncClient(base_url=api, timeout=30) as c:
        alice = await _chat_to_done(
            c, tenant_a, {"message": f"{secret} {key}", "userId": "alice", "chatId": chat_x}
        )
        assert secret in alice.content()
        assert await redis.exists(f"copilot:run:{alice.run_id}:events") == 1

        deleted = await c.delete(f"/api/copilot/chats/{chat_x}", headers=_h(tenant_a),
                                 params={"userId": "alice"})  # fmt: skip
        assert deleted.status_code == 200, deleted.text
        # Deleting a chat removes its runs' event logs with it.
        assert await redis.exists(f"copilot:run:{alice.run_id}:events") == 0
        gone = await c.get(f"/api/copilot/runs/{alice.run_id}", headers=_h(tenant_a),
                           params={"userId": "alice"})  # fmt: skip
        assert gone.status_code == 404

        for tenant, user in ((tenant_b, "bob"), (tenant_a, "alice")):
            reply = scenario(secure.provider, [{"text": f"hello {user}"}])
            fresh = await _chat_to_done(
                c, tenant, {"message": f"hi {reply}", "userId": user, "chatId": chat_x}
            )
            assert fresh.run_id != alice.run_id
            assert "chat_id" in fresh.types()  # a new chat, not a continuation
            assert fresh.content() == f"hello {user}"
            assert all(secret not in str(f.data) for f in fresh.frames)
            snap = await c.get(f"/api/copilot/runs/{fresh.run_id}", headers=_h(tenant),
                               params={"userId": user})  # fmt: skip
            assert snap.status_code == 200
            assert secret not in snap.text
            chat = await c.get(f"/api/copilot/chats/{chat_x}", headers=_h(tenant),
                               params={"userId": user})  # fmt: skip
            assert [m["role"] for m in chat.json()["messages"]] == ["user", "assistant"]
            assert secret not in chat.text
            # The fresh chat can be deleted again (its run is over, not stuck "active").
            assert chat.json()["activeRunId"] is None

        # Two tenants (and two users of one tenant) use the same chat id independently.
        runs = []
        for tenant, user in ((tenant_a, "alice"), (tenant_b, "alice"), (tenant_a, "carol")):
            reply = scenario(secure.provider, [{"text": f"{user} of {tenant[-4:]}"}])
            runs.append(await _chat_to_done(
                c, tenant, {"message": reply, "userId": user, "chatId": chat_y}))  # fmt: skip
        assert [r.content() for r in runs] == [
            f"alice of {tenant_a[-4:]}",
            f"alice of {tenant_b[-4:]}",
            f"carol of {tenant_a[-4:]}",
        ]
        assert len({r.run_id for r in runs}) == 3
        for (tenant, user), run in zip(
            ((tenant_a, "alice"), (tenant_b, "alice"), (tenant_a, "carol")), runs, strict=True
        ):
            listed = await c.get("/api/copilot/runs", headers=_h(tenant),
                                 params={"userId": user, "chatId": chat_y})  # fmt: skip
            assert [r["runId"] for r in listed.json()["runs"]] == [run.run_id]
    await redis.aclose()


async def test_a_snapshots_stream_token_opens_the_run_in_any_tenant(secure: Stack) -> None:
    tenant = _fresh_tenant(secure.api_url)
    key = scenario(secure.provider, [{"text": "in my tenant"}])
    async with httpx.AsyncClient(base_url=secure.api_url, timeout=30) as c:
        live = await _chat_to_done(c, tenant, {"message": key, "userId": "dora"})
        snap = await c.get(f"/api/copilot/runs/{live.run_id}", headers=_h(tenant),
                           params={"userId": "dora"})  # fmt: skip
        assert snap.status_code == 200, snap.text
        token = snap.json()["streamToken"]
        resp = await c.get(f"/api/copilot/runs/{live.run_id}/events",
                           params={"token": token, "after": 0})  # fmt: skip
        assert resp.status_code == 200, resp.text
        events = [json.loads(line[6:]) for line in resp.text.split("\n") if line[:6] == "data: "]
        assert fold_events(events).content == "in my tenant"
        assert events[-1]["type"] == "done"


async def test_revoking_a_key_ends_the_stream_tokens_it_was_given(secure: Stack) -> None:
    tenant = _fresh_tenant(secure.api_url)
    key = scenario(secure.provider, [{"text": "revocable"}])
    async with httpx.AsyncClient(base_url=secure.api_url, timeout=30) as c:
        issued = await c.post("/api/validate-key/generate", headers=_h(tenant),
                              json={"userId": "erin"})  # fmt: skip
        user_key, user_key_id = issued.json()["apiKey"], issued.json()["id"]
        live = await _chat_to_done(c, user_key, {"message": key})
        token = live.headers["x-stream-token"]
        url = f"/api/copilot/runs/{live.run_id}/events"
        assert (await c.get(url, params={"token": token, "after": 0})).status_code == 200
        revoked = await c.post("/api/validate-key/delete", headers=_h(tenant),
                               json={"id": user_key_id})  # fmt: skip
        assert revoked.status_code == 200, revoked.text
        after = await c.get(url, params={"token": token, "after": 0})
        assert after.status_code == 401
        assert "no longer valid" in after.json()["error"]
        # The tenant's service key still reads the run, and a token it gets works.
        snap = await c.get(f"/api/copilot/runs/{live.run_id}", headers=_h(tenant),
                           params={"userId": "erin"})  # fmt: skip
        fresh = await c.get(url, params={"token": snap.json()["streamToken"], "after": 0})
        assert fresh.status_code == 200
