"""Schemathesis over the app's own OpenAPI schema, with auth on and two tenants.

Every operation the schema lists, the SSE routes included, is fuzzed (positive and negative
cases) against a real stack: tenant B's keys, with tenant A's real ids put into the generated
cases, must never get a 5xx nor read anything of A's; tenant A's keys, over A's own objects,
must never get a 5xx either. Nothing is excluded: schemathesis stops reading an event stream
after 20 events or the request timeout, so no SSE route can hang a case.
"""

from __future__ import annotations

import secrets
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode

from tests.conftest import Services, Stack, running_stack, scenario
from tests.fakes.provider import FakeProviderServer

pytestmark = pytest.mark.slow

ADMIN = f"admin-{secrets.token_hex(16)}"
REQUEST_TIMEOUT_S = 10.0
EXAMPLES = 80
# Each valid case of these starts a workflow run (and, with wait, waits for it): fewer of them.
RUN_STARTS = {"POST /api/copilot/chat", "POST /api/chat-completion-streaming",
              "POST /api/v1/copilot/chat"}  # fmt: skip
RUN_START_EXAMPLES = 30
# What a request carrying another owner's object id may answer: never 2xx, and never 409
# (a conflict would reveal that the object exists). 400: another field was invalid first; 403:
# a user key named another user, or may not manage keys (both decided before any lookup).
FOREIGN_ID_STATUSES = {400, 403, 404, 413, 429}
# The one 5xx the contract prescribes for a healthy server: a headless chat whose own `timeout`
# (ms) ran out answers 504 `timeout` with its runId, and the run goes on (CONTRACT.md, Errors).
# It is let through only for a short requested timeout and with exactly that body.
HEADLESS_CHAT = "POST /api/v1/copilot/chat"
SHORT_TIMEOUT_MS = 5000


@pytest.fixture(scope="module")
def secure(services: Services, fake_provider: FakeProviderServer) -> Iterator[Stack]:
    # A high read limit: a 429 from the limiter (which runs first) would hide what the handler
    # does with the case. Run starts keep their default limit, which bounds the runs started.
    with running_stack(
        services, fake_provider, COPILOT_API_KEY=ADMIN, RATE_LIMIT_READS="100000"
    ) as running:
        yield running


def _h(key: str) -> dict[str, str]:
    return {"x-api-key": key}


@dataclass
class Owned:
    """One user's real objects, made through the API."""

    tenant_id: str
    service_key: str
    user_id: str
    user_key: str
    user_key_id: str
    chat_id: str
    run_id: str
    tool_call_id: str
    stream_token: str
    provider: str
    last4: str
    secrets: list[str]  # text only this owner's requests put in: the message, the answer

    def canaries(self) -> dict[str, str]:
        """What must never reach another tenant's caller, by name."""
        found = {
            "tenantId": self.tenant_id,
            "serviceKey": self.service_key,
            "userKey": self.user_key,
            "userKeyId": self.user_key_id,
            # Not the chat id: B may use the same value for a chat of its own (ids are scoped to
            # their owner); A's chat's content is among the secrets below.
            "runId": self.run_id,
            "toolCallId": self.tool_call_id,
            "streamToken": self.stream_token,
            "storedKeyLast4": self.last4,
        }
        found.update({f"text{i}": s for i, s in enumerate(self.secrets)})
        return found


def _issue(c: httpx.Client, key: str, body: dict[str, str]) -> dict[str, Any]:
    resp = c.post("/api/validate-key/generate", json=body, headers=_h(key))
    assert resp.status_code == 200, resp.text
    issued: dict[str, Any] = resp.json()
    assert issued["apiKey"].startswith("sk-copilot-")
    return issued


def _make_objects(
    c: httpx.Client, provider: FakeProviderServer, service_key: str, tenant_id: str, user: str
) -> Owned:
    """A finished run with a tool call, a stored provider key and an issued user key."""
    user_key = _issue(c, service_key, {"userId": user, "name": f"key of {user}"})
    text = f"private-{uuid.uuid4().hex}"
    key = scenario(
        provider,
        [{"tool_calls": [{"name": "echo", "arguments": {"text": text}}]},
         {"text": f"the answer is {text}-answer"}],
    )  # fmt: skip
    done = c.post("/api/v1/copilot/chat", headers=_h(service_key),
                  json={"message": f"tell me {key}", "userId": user})  # fmt: skip
    assert done.status_code == 200, done.text
    result = done.json()
    assert result["success"] is True
    assert result["content"] == f"the answer is {text}-answer"
    [call] = result["toolCalls"]
    assert call["name"] == "echo"
    assert call["status"] == "success"
    last4 = "Zq9W"
    body = {"apiKey": f"sk-private-{uuid.uuid4().hex}{last4}", "userId": user}
    stored = c.put("/api/copilot/keys/openai", headers=_h(service_key), json=body)
    assert stored.status_code == 200, stored.text
    assert stored.json()["last4"] == last4
    snapshot = c.get(f"/api/copilot/runs/{result['runId']}", headers=_h(service_key),
                     params={"userId": user})  # fmt: skip
    assert snapshot.status_code == 200, snapshot.text
    return Owned(
        tenant_id=tenant_id,
        service_key=service_key,
        user_id=user,
        user_key=user_key["apiKey"],
        user_key_id=user_key["id"],
        chat_id=result["chatId"],
        run_id=result["runId"],
        tool_call_id=call["id"],
        stream_token=snapshot.json()["streamToken"],
        provider="openai",
        last4=last4,
        secrets=[key, text],
    )


@dataclass
class World:
    api: str
    a: Owned  # tenant A's user: the objects B tries to reach
    a_own: Owned  # another user of tenant A: the objects A's own fuzzing pass may change
    service_b: str
    user_b_key: str  # a user key of tenant B for a user with the same id as A's user


@pytest.fixture(scope="module")
def world(secure: Stack) -> World:
    tag = uuid.uuid4().hex[:8]
    with httpx.Client(base_url=secure.api_url, timeout=60) as c:
        sa = _issue(c, ADMIN, {"tenantName": f"Acme-{tag}"})
        sb = _issue(c, ADMIN, {"tenantName": f"Globex-{tag}"})
        assert sa["tenantId"] != sb["tenantId"]
        user = f"alice-{tag}"  # the same user id in both tenants
        a = _make_objects(c, secure.provider, sa["apiKey"], sa["tenantId"], user)
        a_own = _make_objects(c, secure.provider, sa["apiKey"], sa["tenantId"], f"bob-{tag}")
        user_b = _issue(c, sb["apiKey"], {"userId": user})
    return World(secure.api_url, a, a_own, sb["apiKey"], user_b["apiKey"])


@pytest.fixture(scope="module")
def api_schema(secure: Stack) -> schemathesis.BaseSchema:
    schema: schemathesis.BaseSchema = schemathesis.openapi.from_url(
        f"{secure.api_url}/openapi.json", timeout=30
    )
    return schema


@dataclass
class Report:
    """What a fuzzing pass sent and got. Problems are collected, not raised, so that one run
    lists all of them: by (operation, what, status), with a count and the first two examples."""

    problems: dict[tuple[str, str, int], list[str]] = field(default_factory=dict)
    problem_counts: Counter[tuple[str, str, int]] = field(default_factory=Counter)
    calls: Counter[str] = field(default_factory=Counter)
    foreign: Counter[str] = field(default_factory=Counter)  # requests carrying A's ids
    statuses: Counter[tuple[str, int]] = field(default_factory=Counter)
    cut_short: Counter[str] = field(default_factory=Counter)
    headless_timeouts: int = 0
    nuls: Counter[str] = field(default_factory=Counter)  # cases given a NUL character

    def problem(self, label: str, what: str, resp: schemathesis.Response | None,
                request: str) -> None:  # fmt: skip
        answer = ""
        if resp is not None:
            answer = f"\n    -> {resp.status_code} {resp.content[:600]!r}"
        group = (label, what, resp.status_code if resp is not None else 0)
        self.problem_counts[group] += 1
        examples = self.problems.setdefault(group, [])
        if len(examples) < 2:
            examples.append(f"  {request}{answer}")

    def problem_text(self) -> str:
        return "\n".join(
            f"{label}: {what} -> {status} ({self.problem_counts[(label, what, status)]} times)\n"
            + "\n".join(examples)
            for (label, what, status), examples in self.problems.items()
        )


def _describe(prepared: requests.PreparedRequest | None, fallback: str) -> str:
    if prepared is None:
        return fallback
    body = prepared.body
    if isinstance(body, bytes):
        body = body[:600].decode(errors="replace")
    key = (prepared.headers.get("x-api-key") or "")[-6:]
    return f"{prepared.method} {prepared.url} key=...{key} body={body!r}"


@dataclass
class Seeds:
    """Values to put into generated cases: the acting user, and the ids of an owner's objects
    (tenant A's, when tenant B calls: then those fields are 'foreign')."""

    user_id: str
    target: Owned
    foreign: bool

    def path(self, name: str) -> str | None:
        return {
            "run_id": self.target.run_id,
            "chat_id": self.target.chat_id,
            "provider": self.target.provider,
        }.get(name)

    def body(self, label: str) -> dict[str, str]:
        """The body fields of this operation that name one of the owner's objects."""
        if label in RUN_STARTS or label == "POST /api/get-context-usage":
            return {"chatId": self.target.chat_id}
        return {
            "POST /api/copilot/confirm": {"toolCallId": self.target.tool_call_id},
            "POST /api/tools/mark-complete": {"id": self.target.tool_call_id},
            "POST /api/validate-key/delete": {"id": self.target.user_key_id},
        }.get(label, {})


def _seed(
    case: schemathesis.Case, label: str, data: st.DataObject, seeds: Seeds, force: bool
) -> list[str]:
    """Put the seeds into the case (object ids: all of them when forced, else each with
    probability one half); the names of the object-id fields seeded (the ones that must answer
    4xx when foreign)."""
    seeded: list[str] = []
    operation = case.operation
    for param in operation.path_parameters:
        value = seeds.path(param.name)
        drawn = data.draw(st.booleans(), label=param.name)  # drawn always: same draws each time
        if value is not None and (force or drawn):
            case.path_parameters[param.name] = value
            # B may have stored its own key for that provider, and chat ids are scoped to
            # their owner: B may have (or start) a chat of its own with A's id's value.
            if param.name not in ("provider", "chat_id"):
                seeded.append(param.name)
    query_names = {p.name for p in operation.query}
    if case.query is None:
        case.query = {}
    if "userId" in query_names and data.draw(st.integers(0, 3), label="seed userId") > 0:
        case.query["userId"] = seeds.user_id
    if "tenantId" in query_names and data.draw(st.booleans(), label="seed tenantId"):
        case.query["tenantId"] = seeds.target.tenant_id  # ignored for issued keys
    if "chatId" in query_names and data.draw(st.booleans(), label="seed chatId query"):
        case.query["chatId"] = seeds.target.chat_id
    if "token" in query_names and data.draw(st.booleans(), label="seed token"):
        case.query["token"] = seeds.target.stream_token  # an API key is sent too: it wins
    if isinstance(case.body, dict):
        if data.draw(st.integers(0, 3), label="seed body userId") > 0:
            case.body["userId"] = seeds.user_id
        for name, value in seeds.body(label).items():
            drawn = data.draw(st.booleans(), label=f"seed body {name}")
            if force or drawn:
                case.body[name] = value
                if name != "chatId":  # scoped to its owner (above)
                    seeded.append(f"body.{name}")
    return seeded


def _add_nul(case: schemathesis.Case, pick: int) -> str | None:
    """Put a NUL character into one of the case's top-level strings (the path, the query or the
    body); the field's name, None when it has no string. Generation alone seldom puts one where
    the store sees it, and PostgreSQL text cannot hold one: the server must refuse it itself."""
    fields: list[tuple[dict[str, Any], str, str]] = []
    for where, values in (("path", case.path_parameters), ("query", case.query),
                          ("body", case.body)):  # fmt: skip
        if isinstance(values, dict):
            fields += [(values, name, where) for name, v in values.items() if isinstance(v, str)]
    if not fields:
        return None
    values, name, where = fields[pick % len(fields)]
    values[name] = values[name][:3] + "\x00" + values[name][3:]
    return f"{where}.{name}"


def _operations(schema: schemathesis.BaseSchema) -> list[schemathesis.APIOperation]:
    """Every operation; those that delete come last, so the seeds reach the others first."""
    operations = [result.ok() for result in schema.get_all_operations()]
    return sorted(operations, key=lambda op: op.method.upper() == "DELETE" or "delete" in op.path)


@dataclass
class Fuzzer:
    """One pass: every operation, generated cases seeded, with the given callers' keys."""

    api: str
    keys: list[str]
    seeds: Seeds
    report: Report
    session: requests.Session

    def run(self, schema: schemathesis.BaseSchema) -> None:
        for operation in _operations(schema):
            self.operation(operation)

    def operation(self, operation: schemathesis.APIOperation) -> None:
        strategy = st.one_of(
            operation.as_strategy(generation_mode=GenerationMode.POSITIVE),
            operation.as_strategy(generation_mode=GenerationMode.NEGATIVE),
        )
        examples = RUN_START_EXAMPLES if operation.label in RUN_STARTS else EXAMPLES

        @settings(max_examples=examples, deadline=None, database=None,
                  phases=[Phase.explicit, Phase.generate],
                  suppress_health_check=list(HealthCheck))  # fmt: skip
        @given(case=strategy, data=st.data())
        def call(case: schemathesis.Case, data: st.DataObject) -> None:
            self.one(case, data)

        call()

    def one(self, case: schemathesis.Case, data: st.DataObject) -> None:
        label, report, foreign = case.operation.label, self.report, self.seeds.foreign
        key = data.draw(st.sampled_from(self.keys), label="key")
        # every other case of an operation carries all the owner's ids it can take
        seeded = _seed(case, label, data, self.seeds, force=report.calls[label] % 2 == 0)
        # one case in eight of each operation: a NUL character in one of its strings
        pick = data.draw(st.integers(0, 999), label="nul field")
        if report.calls[label] % 8 == 3 and _add_nul(case, pick) is not None:
            report.nuls[label] += 1
        report.calls[label] += 1
        if seeded and foreign:
            report.foreign[label] += 1
        try:
            resp = case.call(base_url=self.api, session=self.session, headers=_h(key),
                             timeout=REQUEST_TIMEOUT_S)  # fmt: skip
        except requests.RequestException as exc:
            sent = _describe(exc.request, repr(case))  # type: ignore[arg-type]
            report.problem(label, f"no answer: {exc!r}", None, sent)
            return
        request = _describe(resp.request, repr(case))
        report.statuses[(label, resp.status_code)] += 1
        if resp.stream_cut_short:
            report.cut_short[label] += 1
        if _is_headless_timeout(case, resp):
            report.headless_timeouts += 1
        elif resp.status_code >= 500:
            nul = "%00" in request or "\\u0000" in request
            report.problem(label, "server error" + (" (a NUL sent)" if nul else ""), resp, request)
        if not foreign:
            return
        if seeded and resp.status_code < 500 and resp.status_code not in FOREIGN_ID_STATUSES:
            report.problem(label, "a request with A's ids answered", resp, f"{seeded} {request}")
        seen = resp.content.decode(errors="replace") + repr(resp.headers)
        leaked = [name for name, value in self.seeds.target.canaries().items() if value in seen]
        if leaked:
            report.problem(label, f"tenant A's {leaked} in the answer", resp, request)


def _fuzz(
    schema: schemathesis.BaseSchema, api: str, keys: list[str], seeds: Seeds, report: Report
) -> None:
    with requests.Session() as session:
        Fuzzer(api, keys, seeds, report, session).run(schema)


def _is_headless_timeout(case: schemathesis.Case, resp: schemathesis.Response) -> bool:
    if case.operation.label != HEADLESS_CHAT or resp.status_code != 504:
        return False
    asked = case.body.get("timeout") if isinstance(case.body, dict) else None
    if not isinstance(asked, int) or asked > SHORT_TIMEOUT_MS:
        return False
    try:
        body = resp.json()
    except ValueError:
        return False
    return bool(body.get("code") == "timeout" and str(body.get("runId")).startswith("run_"))


def _summary(report: Report) -> str:
    lines = [
        f"{label}: {n} calls, {report.foreign[label]} with A's ids, {report.nuls[label]} with NUL"
        for label, n in sorted(report.calls.items())
    ]
    lines.append(f"statuses: {sorted(report.statuses.items())}")
    lines.append(f"SSE reads cut short (time or event limit): {dict(report.cut_short)}")
    lines.append(f"headless 504 timeouts for a timeout <= {SHORT_TIMEOUT_MS} ms asked: "
                 f"{report.headless_timeouts}")  # fmt: skip
    return "\n".join(lines)


def _assert_intact(api: str, owner: Owned) -> None:
    """The owner still has every object (a foreign DELETE must not have removed any)."""
    with httpx.Client(base_url=api, timeout=30, headers=_h(owner.user_key)) as c:
        chat = c.get(f"/api/copilot/chats/{owner.chat_id}")
        assert chat.status_code == 200, chat.text
        assert owner.secrets[1] in chat.text
        run = c.get(f"/api/v1/copilot/runs/{owner.run_id}")
        assert run.status_code == 200, run.text
        assert run.json()["toolCalls"][0]["id"] == owner.tool_call_id
        stored = c.get(f"/api/copilot/keys/{owner.provider}")
        assert stored.status_code == 200, stored.text
        assert stored.json()["last4"] == owner.last4
        keys = c.post("/api/validate-key/get-api-keys", headers=_h(owner.service_key))
        assert owner.user_key_id in [k["id"] for k in keys.json()["keys"]]


def _explicit_cross_tenant(world: World) -> list[str]:
    """Hand-written: every route that takes an id, tenant B's keys, tenant A's ids (the SSE
    routes included, read with a timeout); each must answer 404, except starting a chat with
    A's chat id, which is B's own fresh chat."""
    a = world.a
    failures = []
    with httpx.Client(base_url=world.api, timeout=REQUEST_TIMEOUT_S) as c:
        as_service = {"userId": a.user_id, "tenantId": a.tenant_id}  # tenantId: only admins'
        for key, q in ((world.service_b, as_service), (world.user_b_key, {})):
            h = _h(key)
            tries = [
                c.get(f"/api/copilot/chats/{a.chat_id}", headers=h, params=q),
                c.delete(f"/api/copilot/chats/{a.chat_id}", headers=h, params=q),
                c.get(f"/api/copilot/runs/{a.run_id}", headers=h, params=q),
                c.get(f"/api/copilot/runs/{a.run_id}/events", headers=h,
                      params={**q, "token": a.stream_token, "after": 0}),
                c.post(f"/api/copilot/runs/{a.run_id}/abort", headers=h, params=q),
                c.get(f"/api/v1/copilot/runs/{a.run_id}", headers=h, params=q),
                c.get(f"/api/copilot/keys/{a.provider}", headers=h, params=q),
                c.delete(f"/api/copilot/keys/{a.provider}", headers=h, params=q),
                c.post("/api/copilot/confirm", headers=h,
                       json={"toolCallId": a.tool_call_id, "status": "accepted", **q}),
                c.post("/api/get-context-usage", headers=h, json={"chatId": a.chat_id, **q}),
            ]  # fmt: skip
            if key == world.service_b:
                tries += [
                    c.post("/api/tools/mark-complete", headers=h,
                           json={"id": a.tool_call_id, "name": "echo", "status": 200}),
                    c.post("/api/validate-key/delete", headers=h, json={"id": a.user_key_id}),
                ]  # fmt: skip
            for resp in tries:
                if resp.status_code != 404:
                    failures.append(f"{resp.request.method} {resp.request.url} -> "
                                    f"{resp.status_code} {resp.text[:300]}")  # fmt: skip
            listed = c.get("/api/copilot/runs", headers=h, params={**q, "chatId": a.chat_id})
            assert listed.status_code == 200, listed.text
            if listed.json()["runs"]:
                failures.append(f"GET /api/copilot/runs?chatId=<A's> -> {listed.text[:300]}")
        # A's chat id sent by B is B's own chat (ids are scoped to their owner): it starts
        # fresh, and nothing of A's may show.
        for key, q in ((world.service_b, as_service), (world.user_b_key, {})):
            for path in ("/api/copilot/chat", "/api/chat-completion-streaming",
                         "/api/v1/copilot/chat"):  # fmt: skip
                resp = c.post(path, headers=_h(key),
                              json={"message": "hi", "chatId": a.chat_id, **q})  # fmt: skip
                leaked = [v for v in (a.run_id, a.tool_call_id, *a.secrets) if v in resp.text]
                if resp.status_code != 200 or leaked:
                    failures.append(f"POST {path} with A's chatId -> {resp.status_code} "
                                    f"{resp.text[:300]}")  # fmt: skip
    return failures


@pytest.mark.timeout(400)
def test_tenant_b_fuzzing_gets_no_5xx_and_none_of_tenant_a(
    world: World, api_schema: schemathesis.BaseSchema
) -> None:
    _assert_intact(world.api, world.a)
    assert _explicit_cross_tenant(world) == []
    report = Report()
    started = time.monotonic()
    seeds = Seeds(user_id=world.a.user_id, target=world.a, foreign=True)
    _fuzz(api_schema, world.api, [world.service_b, world.user_b_key], seeds, report)
    print(f"tenant B pass: {time.monotonic() - started:.1f}s\n{_summary(report)}")
    assert report.problems == {}, report.problem_text()
    # every operation was called, and every one that takes an id of A's was tried with one
    operations = {op.label for op in _operations(api_schema)}
    assert set(report.calls) == operations
    # Chat ids are scoped to their owner (a chat id of A's is no object of B's), so the routes
    # taking only a chat id are checked by the explicit test above, not counted here.
    body_ids = {
        "POST /api/copilot/confirm",
        "POST /api/tools/mark-complete",
        "POST /api/validate-key/delete",
    }
    with_ids = {x for x in operations if "{run_id}" in x or x in body_ids}
    assert with_ids - set(report.foreign) == set()
    _assert_intact(world.api, world.a)


@pytest.mark.timeout(400)
def test_tenant_a_fuzzing_gets_no_5xx(world: World, api_schema: schemathesis.BaseSchema) -> None:
    report = Report()
    started = time.monotonic()
    own = world.a_own
    seeds = Seeds(user_id=own.user_id, target=own, foreign=False)
    _fuzz(api_schema, world.api, [own.service_key, own.user_key], seeds, report)
    print(f"tenant A pass: {time.monotonic() - started:.1f}s\n{_summary(report)}")
    assert report.problems == {}, report.problem_text()
    ok = {label for (label, status), n in report.statuses.items() if 200 <= status < 300}
    # the seeds reach the success paths too, not only validation errors
    assert {"GET /api/copilot/chats/{chat_id}", "GET /api/copilot/runs/{run_id}",
            "GET /api/v1/copilot/runs/{run_id}", "GET /api/copilot/keys"} <= ok  # fmt: skip
