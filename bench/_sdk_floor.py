"""The floor for scenario (a): the official openai SDK alone, in a fresh process, with no harness at
all (or, with `raw`, plain aiohttp with no SDK: the floor of the transport itself, which honours a
429's Retry-After exactly and nothing more).

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
    if raw:
        import aiohttp

        session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=concurrency))
        url = f"http://127.0.0.1:{port}/v1/chat/completions"

        async def call(i) -> float | None:
            """None once answered, else the 429's Retry-After."""
            async with session.post(url, json=body(i)) as r:
                if r.status == 429:
                    return float(r.headers.get("Retry-After", "1"))
                await r.json()
                return None

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

        async def call(i) -> None:
            (await client.post("/chat/completions", cast_to=httpx2.Response, body=body(i))).json()

        close = client.close

    # `concurrency` senders take calls from one queue; a refused call goes back to its head the
    # moment its Retry-After is over (scenario f), and its sender takes the next call meanwhile
    queue: asyncio.PriorityQueue[tuple[int, int]] = asyncio.PriorityQueue()
    for i in range(n):
        queue.put_nowait((1, i))
    left = [n]
    finished = asyncio.Event()
    loop = asyncio.get_running_loop()

    async def sender():
        while True:
            _, i = await queue.get()
            wait = await call(i)
            if wait is not None:
                loop.call_later(wait, queue.put_nowait, (0, i))
                continue
            left[0] -= 1
            if not left[0]:
                finished.set()

    senders = [asyncio.create_task(sender()) for _ in range(concurrency)]
    await finished.wait()
    for s in senders:
        s.cancel()
    await close()


if __name__ == "__main__":
    asyncio.run(main(*map(int, sys.argv[1:4]), raw=sys.argv[4:] == ["raw"]))
