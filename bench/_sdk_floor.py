"""The floor for scenario (a): the official openai SDK alone, in a fresh process, with no harness at all.

`concurrency` coroutines call the same endpoint through the same client and transport Holdout uses
(`AsyncOpenAI` on `DefaultAioHttpClient`, `client.post`), store nothing and print nothing. The
wall time of this process is what any Python tool built on the SDK pays on this machine.

    python bench/_sdk_floor.py PORT N CONCURRENCY
"""
import asyncio
import sys

import httpx2
import openai


async def main(port: int, n: int, concurrency: int) -> None:
    limits = httpx2.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    client = openai.AsyncOpenAI(api_key="not-needed", base_url=f"http://127.0.0.1:{port}/v1", max_retries=0,
                                http_client=openai.DefaultAioHttpClient(limits=limits))
    jobs = iter(range(n))

    async def worker():
        for i in jobs:
            body = {"model": "m", "messages": [{"role": "user", "content": f"Benchmark prompt {i}: say something short."}],
                    "max_tokens": 16}
            (await client.post("/chat/completions", cast_to=httpx2.Response, body=body)).json()

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    await client.close()


if __name__ == "__main__":
    asyncio.run(main(*map(int, sys.argv[1:4])))
