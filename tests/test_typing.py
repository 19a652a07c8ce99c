"""mypy --strict sees through the decorator: argument types checked, results typed."""

from __future__ import annotations

import textwrap
from pathlib import Path

from mypy import api

SNIPPET = """
from cachekit import AsyncCache, async_cached, async_cached_many

class User:
    name: str

@async_cached(ttl=60)
async def get_user(user_id: int) -> User:
    return User()

@async_cached
async def bare(x: str) -> int:
    return len(x)

class Repo:
    @async_cached
    async def find(self, key: int) -> str:
        return str(key)

@async_cached_many(ttl=60)
async def users(ids: list[int]) -> dict[int, User]:
    return {i: User() for i in ids}

async def main() -> None:
    user = await get_user(1)
    reveal_type(user)
    reveal_type(await bare("x"))
    reveal_type(await Repo().find(3))
    reveal_type(get_user.invalidate(1))
    cache: AsyncCache[str, int] = AsyncCache(ttl=5)
    reveal_type(await cache.get_or_compute("k", lambda: bare("k")))
    reveal_type(await users([1, 2]))
    await get_user("not an int")
    AsyncCache(policy="lur")
"""


def test_mypy_strict_sees_the_decorated_types(tmp_path: Path) -> None:
    source = tmp_path / "sample.py"
    source.write_text(textwrap.dedent(SNIPPET))
    stdout, _, _ = api.run(
        ["--strict", "--no-incremental", "--cache-dir", str(tmp_path / ".mypy"), str(source)]
    )
    lines = [line.split(": ", 1)[1] for line in stdout.splitlines() if ": " in line]
    revealed = [line.split('"')[1] for line in lines if "Revealed type" in line]
    # mypy spells builtins with or without their module, depending on its version.
    revealed = [name.removeprefix("builtins.") for name in revealed]
    assert revealed == [
        "sample.User",
        "int",
        "str",
        "bool",
        "int",
        "dict[int, sample.User]",
    ], stdout
    errors = [line for line in lines if line.startswith("error")]
    assert len(errors) == 2, stdout
    assert 'incompatible type "str"; expected "int"' in errors[0]
    assert 'Argument "policy"' in errors[1] and "'lur'" in errors[1]  # a Literal: caught
