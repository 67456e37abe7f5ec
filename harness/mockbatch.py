"""The mock server's OpenAI Batch API: files (upload, list, retrieve, content, delete) and batches
(create, retrieve, list, cancel), as the official SDK calls them.

A batch completes `batch_delay_s` after it was created (the next retrieve after that processes
it); every `batch_fail_every`-th request in it fails (a 500 in the error file); with
`batch_expire` it expires instead, having answered only its first half. Each request a batch
answers counts in the server's stats as an online call does (that is what a provider bills), and
the server keeps its own record of every file and batch it holds and every deletion, so a test
can see that nothing was submitted twice and nothing was left behind."""

from __future__ import annotations

import itertools
import json
import time

from aiohttp import web

from . import mockreplies as replies

BATCH_WINDOW_S = 24 * 3600


class MockBatches:
    def __init__(self, server):
        self.server = server
        self.files: dict[str, dict] = {}  # id -> {meta..., "content": bytes}
        self.batches: dict[str, dict] = {}
        self.deleted_files: list[str] = []
        self.created_batches: list[str] = []  # every batch ever created, in order
        self._ids = itertools.count(1)

    def routes(self, app: web.Application, prefix: str = "/v1") -> None:
        app.router.add_post(f"{prefix}/files", self.upload)
        app.router.add_get(f"{prefix}/files", self.list_files)
        app.router.add_get(f"{prefix}/files/{{id}}", self.file)
        app.router.add_get(f"{prefix}/files/{{id}}/content", self.content)
        app.router.add_delete(f"{prefix}/files/{{id}}", self.delete)
        app.router.add_post(f"{prefix}/batches", self.create)
        app.router.add_get(f"{prefix}/batches", self.list_batches)
        app.router.add_get(f"{prefix}/batches/{{id}}", self.retrieve)
        app.router.add_post(f"{prefix}/batches/{{id}}/cancel", self.cancel)

    def snapshot(self) -> dict:
        return {
            "files": sorted(self.files),
            "deleted_files": list(self.deleted_files),
            "batches_created": list(self.created_batches),
            "batches": {b["id"]: b["status"] for b in self.batches.values()},
        }

    # -- files ------------------------------------------------------------------
    def _new_file(self, name: str, purpose: str, content: bytes) -> dict:
        meta = {
            "id": f"file-mock{next(self._ids)}",
            "object": "file",
            "bytes": len(content),
            "created_at": int(time.time()),
            "filename": name,
            "purpose": purpose,
            "status": "processed",
        }
        self.files[meta["id"]] = {**meta, "content": content}
        return meta

    @staticmethod
    def _public(f: dict) -> dict:
        return {k: v for k, v in f.items() if k != "content"}

    async def upload(self, request):
        form = await request.post()
        upload = form.get("file")
        if upload is None or not hasattr(upload, "file"):
            return _bad("a file is required")
        meta = self._new_file(upload.filename, str(form.get("purpose", "")), upload.file.read())
        return web.json_response(meta)

    async def list_files(self, request):
        return web.json_response(
            {"object": "list", "data": [self._public(f) for f in self.files.values()]}
        )

    async def file(self, request):
        f = self.files.get(request.match_info["id"])
        return web.json_response(self._public(f)) if f else _missing("file")

    async def content(self, request):
        f = self.files.get(request.match_info["id"])
        if f is None:
            return _missing("file")
        return web.Response(body=f["content"], content_type="application/octet-stream")

    async def delete(self, request):
        fid = request.match_info["id"]
        if self.files.pop(fid, None) is None:
            return _missing("file")
        self.deleted_files.append(fid)
        return web.json_response({"id": fid, "object": "file", "deleted": True})

    # -- batches ----------------------------------------------------------------
    async def create(self, request):
        body = await request.json()
        if body.get("input_file_id") not in self.files:
            return _bad("input_file_id: no such file")
        now = int(time.time())
        batch = {
            "id": f"batch_mock{next(self._ids)}",
            "object": "batch",
            "endpoint": body.get("endpoint"),
            "input_file_id": body["input_file_id"],
            "completion_window": body.get("completion_window", "24h"),
            "status": "in_progress",
            "output_file_id": None,
            "error_file_id": None,
            "created_at": now,
            "expires_at": now + BATCH_WINDOW_S,
            "completed_at": None,
            "request_counts": {"total": 0, "completed": 0, "failed": 0},
            "metadata": body.get("metadata"),
        }
        self.batches[batch["id"]] = batch
        self.created_batches.append(batch["id"])
        self.server.stats.batch_created_at[batch["id"]] = time.monotonic()
        return web.json_response(batch)

    async def list_batches(self, request):
        data = sorted(self.batches.values(), key=lambda b: b["created_at"], reverse=True)
        return web.json_response({"object": "list", "data": data, "has_more": False})

    async def retrieve(self, request):
        batch = self.batches.get(request.match_info["id"])
        if batch is None:
            return _missing("batch")
        self._maybe_finish(batch)
        return web.json_response(batch)

    async def cancel(self, request):
        batch = self.batches.get(request.match_info["id"])
        if batch is None:
            return _missing("batch")
        if batch["status"] in ("validating", "in_progress"):
            batch["status"] = "cancelled"
        return web.json_response(batch)

    def _maybe_finish(self, batch: dict) -> None:
        """Answer the batch's requests once its processing time has passed."""
        b = self.server.behaviour
        started = self.server.stats.batch_created_at[batch["id"]]
        if batch["status"] != "in_progress" or time.monotonic() - started < b.batch_delay_s:
            return
        lines = self.files[batch["input_file_id"]]["content"].decode().splitlines()
        lines = [json.loads(x) for x in lines if x.strip()]
        answered = lines[: len(lines) // 2] if b.batch_expire else lines
        out, errors = [], []
        for n, line in enumerate(answered, 1):
            status, body = self._answer(
                line["body"], fail=b.batch_fail_every and n % b.batch_fail_every == 0
            )
            record = {
                "id": f"batch_req_{batch['id']}_{n}",
                "custom_id": line["custom_id"],
                "response": {"status_code": status, "request_id": f"req_{n}", "body": body},
                "error": None,
            }
            (out if status == 200 else errors).append(record)
        batch["request_counts"] = {
            "total": len(lines),
            "completed": len(out),
            "failed": len(errors),
        }
        if out:
            batch["output_file_id"] = self._new_file(
                f"{batch['id']}_output.jsonl", "batch_output", _jsonl(out)
            )["id"]
        if errors:
            batch["error_file_id"] = self._new_file(
                f"{batch['id']}_error.jsonl", "batch_output", _jsonl(errors)
            )["id"]
        batch["status"] = "expired" if b.batch_expire else "completed"
        batch["completed_at"] = int(time.time())

    def _answer(self, body: dict, *, fail: bool) -> tuple[int, dict]:
        """One request of a batch, answered as the online endpoint would (and counted alike)."""
        s = self.server.stats
        s.requests += 1
        s.batch_requests += 1
        model = body.get("model", "?")
        prompt = replies.last_user_text(body)
        s.by_model[model] += 1
        s.by_prompt[(model, prompt)] += 1
        if self.server.behaviour.record_bodies:
            s.bodies.append(json.dumps(body))
        if fail:
            return 500, {"error": {"message": "server error", "type": "server_error"}}
        b = self.server.behaviour
        fault = b.fault_models.get(model)
        if fault in replies.CODED:  # as online: the provider's code, a message quoting the prompt
            status, code, _ = replies.CODED[fault]
            message = f"{code}: the request could not be served: {prompt[:200]}"
            return status, {
                "error": {"message": message, "type": "invalid_request_error", "code": code}
            }
        if fault == "refusal":
            message = {"role": "assistant", "content": None, "refusal": "I can't help with that."}
            return 200, {
                "model": model,
                "choices": [{"index": 0, "message": message, "finish_reason": "stop"}],
                "usage": {"prompt_tokens": 1, "completion_tokens": 1},
            }
        text = self.server._reply("openai", body, prompt)
        s.ok += 1
        return 200, replies.completion(
            "openai",
            model=b.served_as.get(model, model),
            body=body,
            text=text or "",
            finish="stop",
            output_tokens=b.output_tokens,
            honour_max_tokens=b.honour_max_tokens,
        )


def _jsonl(records: list[dict]) -> bytes:
    return "".join(json.dumps(r) + "\n" for r in records).encode()


def _bad(message: str) -> web.Response:
    return web.json_response(
        {"error": {"message": message, "type": "invalid_request_error"}}, status=400
    )


def _missing(what: str) -> web.Response:
    return web.json_response(
        {"error": {"message": f"no such {what}", "type": "invalid_request_error"}}, status=404
    )
