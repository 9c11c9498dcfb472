"""Fixed-window rate limits in Redis, atomic across API replicas.

One Lua call increments and reads the window's counter, so 250 concurrent requests against a
limit of 100 let exactly 100 through. Policy when Redis is down: fail open (the request is
served, a warning is logged and ``copilot_rate_limit_unavailable_total`` counts it): losing
the limiter must not take the product down with it; Redis health shows in /api/health.
"""

from __future__ import annotations

import ipaddress
import logging
import math
from dataclasses import dataclass

from redis.asyncio import Redis

log = logging.getLogger("copilot.ratelimit")

_HIT = """
local n = redis.call('INCR', KEYS[1])
if n == 1 then redis.call('PEXPIRE', KEYS[1], ARGV[1]) end
local ttl = redis.call('PTTL', KEYS[1])
if ttl < 0 then redis.call('PEXPIRE', KEYS[1], ARGV[1]); ttl = tonumber(ARGV[1]) end
return {n, ttl}
"""


@dataclass(frozen=True)
class Verdict:
    allowed: bool
    limit: int
    remaining: int
    reset_s: int
    scope: str

    def headers(self, window_s: int) -> dict[str, str]:
        return {
            "RateLimit-Policy": f'"{self.scope}";q={self.limit};w={window_s}',
            "RateLimit": f'"{self.scope}";r={self.remaining};t={self.reset_s}',
        }


class RateLimiter:
    def __init__(self, redis: Redis, *, window_s: int) -> None:
        self._redis = redis
        self._window_s = window_s
        self._hit = redis.register_script(_HIT)
        self.unavailable = 0

    @property
    def window_s(self) -> int:
        return self._window_s

    async def hit(self, scope: str, ident: str, limit: int) -> Verdict:
        key = f"copilot:rl:{scope}:{ident}"
        try:
            count, ttl_ms = await self._hit(keys=[key], args=[self._window_s * 1000])
        except Exception as exc:  # fail open: see the module docstring
            self.unavailable += 1
            log.warning("rate limiter unavailable (%s): allowing the request", exc)
            return Verdict(True, limit, limit, self._window_s, scope)
        count, reset = int(count), max(1, math.ceil(int(ttl_ms) / 1000))
        return Verdict(count <= limit, limit, max(0, limit - count), reset, scope)


def parse_proxies(text: str) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    return [ipaddress.ip_network(p.strip(), strict=False) for p in text.split(",") if p.strip()]


def client_ip(
    peer: str | None,
    forwarded_for: str | None,
    trusted: list[ipaddress.IPv4Network | ipaddress.IPv6Network],
) -> str:
    """The client's address: ``X-Forwarded-For`` is believed only from a trusted proxy."""
    ip = peer or "unknown"
    if not forwarded_for or not trusted:
        return ip
    hops = [h.strip() for h in forwarded_for.split(",") if h.strip()]
    # Walk from the nearest hop; the first address not ours is the client.
    for hop in reversed([*hops, ip]):
        try:
            address = ipaddress.ip_address(hop)
        except ValueError:
            return hop
        if not any(address in net for net in trusted):
            return hop
    return hops[0] if hops else ip
