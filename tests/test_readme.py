"""Every ```python block of README.md runs, as a reader would paste it.

Each block runs alone, in a fresh namespace holding cachekit's public names (the first
block's imports) and tiny stand-ins for what the reader's application provides: `User`,
`http`, `db`, `fetch`, `url`, metrics objects. A user function written with `...` as its body
gets a stand-in body (STAND_INS, by function name) that returns what its annotation promises.
Top-level `await` is allowed, as in an asyncio REPL (`python -m asyncio`). The Redis example
runs against the test redis-server, its URL and secret standing in for the reader's.

After a block runs, its entry in FOLLOW_UPS (matched by a line of the block) checks that it
did what its comments say. A block that raises fails the test, and so does a follow-up that
no longer matches any block, so an example cannot drift away from the library unnoticed.
"""

from __future__ import annotations

import ast
import asyncio
import functools
import re
from collections.abc import Awaitable, Callable, Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

import cachekit

from .redis_server import RedisServer, require_binary

README = Path(__file__).resolve().parent.parent / "README.md"


class Block:
    def __init__(self, heading: str, line: int, code: str) -> None:
        self.heading, self.line, self.code = heading, line, code

    @property
    def id(self) -> str:
        slug = re.sub(r"[^a-z0-9]+", "-", self.heading.lower()).strip("-")
        return f"{slug}-line{self.line}"


def readme_blocks(text: str) -> list[Block]:
    blocks: list[Block] = []
    heading, start, lines = "top", 0, text.splitlines()
    code: list[str] | None = None
    for number, line in enumerate(lines, 1):
        if code is not None:
            if line.startswith("```"):
                blocks.append(Block(heading, start, "\n".join(code) + "\n"))
                code = None
            else:
                code.append(line)
        elif line.startswith("```python"):
            code, start = [], number + 1
        elif line.startswith("#"):
            heading = line.lstrip("#").strip()
    return blocks


BLOCKS = readme_blocks(README.read_text())


# ----------------------------------------------------------------------------- stand-ins


class User:
    def __init__(self, **fields: Any) -> None:
        self.__dict__.update(fields)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, User) and vars(self) == vars(other)

    def __hash__(self) -> int:
        return hash(tuple(sorted(vars(self).items())))


class Http:
    """`http.get_json(path)`: an HTTP client."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    async def get_json(self, path: str) -> User:
        self.calls.append(path)
        await asyncio.sleep(0)
        return User(path=path)


class Db:
    """`db.fetch(query, *args)`: an asyncpg-like pool returning rows for the ids asked."""

    def __init__(self) -> None:
        self.calls: list[list[int]] = []

    async def fetch(self, query: str, ids: list[int]) -> list[dict[str, Any]]:
        self.calls.append(list(ids))
        await asyncio.sleep(0)
        return [{"id": i, "name": f"user {i}"} for i in ids]


class Metric:
    """A prometheus_client Counter or Histogram: `labels(...).inc()`, `observe(v)`."""

    def __init__(self) -> None:
        self.counts: dict[str, int] = {}
        self.observed: list[float] = []

    def labels(self, kind: str) -> Any:
        metric = self

        class Child:
            def inc(self) -> None:
                metric.counts[kind] = metric.counts.get(kind, 0) + 1

        return Child()

    def observe(self, value: float) -> None:
        self.observed.append(value)


class Calls:
    """Counts calls of the stand-in bodies, by function name."""

    def __init__(self) -> None:
        self.args: dict[str, list[tuple[Any, ...]]] = {}

    def record(self, name: str, *args: Any) -> None:
        self.args.setdefault(name, []).append(args)


async def _user(calls: Calls, user_id: int) -> User:
    calls.record("get_user", user_id)
    return User(id=user_id)


async def _users(calls: Calls, ids: list[int]) -> dict[int, User]:
    calls.record("users_by_id", list(ids))
    return {i: User(id=i) for i in ids}


async def _rate(calls: Calls, currency: str) -> Decimal:
    calls.record("rate", currency)
    return Decimal("1.08")


# Bodies for the README's `async def name(...): ...`, by name.
STAND_INS: dict[str, Callable[..., Awaitable[Any]]] = {
    "get_user": _user,
    "users_by_id": _users,
    "rate": _rate,
}


class _FillBodies(ast.NodeTransformer):
    """`async def f(a, b): ...` -> `async def f(a, b): return await __stand_in__["f"](a, b)`."""

    def visit_AsyncFunctionDef(self, node: ast.AsyncFunctionDef) -> ast.AST:
        body = node.body
        if len(body) == 1 and isinstance(body[0], ast.Expr):
            value = body[0].value
            if isinstance(value, ast.Constant) and value.value is Ellipsis:
                if node.name not in STAND_INS:
                    raise AssertionError(f"no stand-in body for {node.name}() in STAND_INS")
                args = [ast.Name(a.arg, ast.Load()) for a in node.args.args]
                call = ast.Call(
                    ast.Subscript(
                        ast.Name("__stand_in__", ast.Load()),
                        ast.Constant(node.name),
                        ast.Load(),
                    ),
                    args,
                    [],
                )
                node.body = [ast.Return(ast.Await(call))]
                ast.copy_location(node.body[0], body[0])
                ast.fix_missing_locations(node)
        return node


def _namespace(calls: Calls) -> dict[str, Any]:
    namespace: dict[str, Any] = {name: getattr(cachekit, name) for name in cachekit.__all__}
    namespace.update(
        __name__="readme",
        __stand_in__={name: functools.partial(fn, calls) for name, fn in STAND_INS.items()},
        asyncio=asyncio,
        Decimal=Decimal,
        User=User,
        http=Http(),
        db=Db(),
        fetch=lambda url: _fetch(calls, url),
        url="https://example.org/",
        CACHE_EVENTS=Metric(),
        LOAD_SECONDS=Metric(),
        calls=calls,
    )
    return namespace


async def _fetch(calls: Calls, url: str) -> bytes:
    calls.record("fetch", url)
    await asyncio.sleep(0)
    return b"body"


async def _run(block: Block, namespace: dict[str, Any]) -> None:
    tree = _FillBodies().visit(ast.parse(block.code))
    ast.increment_lineno(tree, block.line - 1)
    code = compile(tree, str(README), "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)
    result = eval(code, namespace)  # a coroutine when the block awaits at top level
    if asyncio.iscoroutine(result):
        await result


# ----------------------------------------------------------------------------- follow-ups


async def _in_30_seconds(ns: dict[str, Any]) -> None:
    # get_user(1) twice: one load (a miss, then a hit); invalidate and clear empty it.
    assert ns["http"].calls == ["/users/1"]
    assert ns["user"] == User(path="/users/1")
    assert ns["get_user"].cache_info().currsize == 0


async def _explicit_cache(ns: dict[str, Any]) -> None:
    assert ns["calls"].args["fetch"] == [("https://example.org/",)]
    assert ns["body"] == b"body"
    assert len(ns["cache"]) == 0  # cleared at the end of the block


async def _exchange_rate(ns: dict[str, Any]) -> None:
    rate = ns["rate"]
    assert await rate("EUR") == await rate("EUR") == Decimal("1.08")
    assert ns["calls"].args["rate"] == [("EUR",)]


async def _get_many(ns: dict[str, Any]) -> None:
    assert list(ns["found"]) == [3, 1, 2]
    assert ns["found"][1] == User(id=1, name="user 1")
    assert ns["db"].calls == [[3, 1, 2]]
    assert await ns["users"].get_many([1, 4], ns["users_by_id"]) == {
        1: User(id=1, name="user 1"),
        4: User(id=4, name="user 4"),
    }
    assert ns["db"].calls == [[3, 1, 2], [4]]  # 1 was a hit


async def _cached_many(ns: dict[str, Any]) -> None:
    assert ns["found"] == {i: User(id=i) for i in (3, 1, 2)}
    await ns["users_by_id"]([3, 1, 2, 5])  # only 3 was invalidated; 5 is new
    assert ns["calls"].args["users_by_id"] == [([3, 1, 2],), ([3, 5],)]


async def _listening(ns: dict[str, Any]) -> None:
    get_user = ns["get_user"]
    assert await get_user(7) == await get_user(7) == User(id=7)
    counts = ns["CACHE_EVENTS"].counts
    assert counts == {"miss": 1, "load_success": 1, "hit": 1}, counts
    assert len(ns["LOAD_SECONDS"].observed) == 1


async def _retries(ns: dict[str, Any]) -> None:
    get_user = ns["get_user"]
    assert await get_user(2) == await get_user(2) == User(id=2)
    assert ns["calls"].args["get_user"] == [(2,)]


# A line of the block -> the check that runs after it.
FOLLOW_UPS: dict[str, Callable[[dict[str, Any]], Awaitable[None]]] = {
    "get_user.invalidate(1)": _in_30_seconds,
    "body = await cache.get_or_compute(url, lambda: fetch(url))": _explicit_cache,
    "async def rate(currency: str) -> Decimal: ...": _exchange_rate,
    "found = await users.get_many([3, 1, 2], users_by_id)": _get_many,
    "found = await users_by_id([3, 1, 2])": _cached_many,
    "def to_metrics(event: CacheEvent) -> None:": _listening,
    "@tenacity.retry(": _retries,
}


def _follow_up(block: Block) -> Callable[[dict[str, Any]], Awaitable[None]] | None:
    found = [check for line, check in FOLLOW_UPS.items() if line in block.code]
    assert len(found) <= 1, f"{block.id} matches several follow-ups"
    return found[0] if found else None


def test_the_readme_has_python_examples_and_every_follow_up_finds_its_block() -> None:
    assert len(BLOCKS) >= 8
    for line in FOLLOW_UPS:
        matching = [b.id for b in BLOCKS if line in b.code]
        assert len(matching) == 1, f"follow-up for {line!r} matches {matching or 'no block'}"


@pytest.fixture
def redis_url(request: pytest.FixtureRequest) -> Iterator[str | None]:
    """A redis-server's URL for the blocks that use one; None for the others."""
    block: Block = request.node.callspec.params["block"]
    if "RedisTier" not in block.code:
        yield None
        return
    server = RedisServer(require_binary())
    server.start()
    try:
        yield server.url
    finally:
        server.stop()


@pytest.mark.parametrize("block", BLOCKS, ids=[b.id for b in BLOCKS])
async def test_readme_example_runs(
    block: Block, redis_url: str | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    if redis_url is not None:
        monkeypatch.setenv("CACHE_SECRET", "a secret of at least 16 bytes")
        code = block.code.replace("redis://localhost:6379/0", redis_url)
        assert code != block.code, "the Redis example no longer connects to localhost:6379/0"
        block = Block(block.heading, block.line, code)
    namespace = _namespace(Calls())
    await _run(block, namespace)
    follow_up = _follow_up(block)
    if follow_up is not None:
        await follow_up(namespace)
