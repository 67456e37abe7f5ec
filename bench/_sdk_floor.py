"""The floor for scenario (a): the official openai SDK alone, in a fresh process, with no harness at
all (or, with `raw`, plain aiohttp with no SDK: the floor of the transport itself).

`concurrency` coroutines call the same endpoint through the same client and transport Holdout uses
(`AsyncOpenAI` on `DefaultAioHttpClient`, `client.post`), store nothing and print nothing. The
wall time of this process is what any Python tool built on the SDK pays on this machine.

    python bench/_sdk_floor.py PORT N CONCURRENCY [raw]
"""

import asyncio
import sys


def body(i: int) -> dict:
    return {
        "model": "m",
        "messages": [{"role": "user", "content": f"Benchmark prompt {i}: say something short."}],
        "max_tokens": 16,
    }


async def main(port: int, n: int, concurrency: int, raw: bool) -> None:
    jobs = iter(range(n))
    if raw:
        import aiohttp

        session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=concurrency))
        url = f"http://127.0.0.1:{port}/v1/chat/completions"

        async def call(i):
            async with session.post(url, json=body(i)) as r:
                await r.json()

        close = session.close
    else:
        import httpx2
        import openai

        limits = httpx2.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
        client = openai.AsyncOpenAI(
            api_key="not-needed",
            base_url=f"http://127.0.0.1:{port}/v1",
            max_retries=0,
            http_client=openai.DefaultAioHttpClient(limits=limits),
        )

        async def call(i):
            (await client.post("/chat/completions", cast_to=httpx2.Response, body=body(i))).json()

        close = client.close

    async def worker():
        for i in jobs:
            await call(i)

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    await close()


if __name__ == "__main__":
    asyncio.run(main(*map(int, sys.argv[1:4]), raw=sys.argv[4:] == ["raw"]))
