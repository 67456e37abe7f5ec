"""The mock server's batch APIs, as the official SDKs call them: OpenAI's (files: upload, list,
retrieve, content, delete; batches: create, retrieve, list, cancel) and Anthropic's Message
Batches (create, retrieve, list, results, cancel, delete).

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
            {
                "object": "list",
                "data": [self._public(f) for f in self.files.values()],
                "has_more": False,
            }
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
        return answer(self.server, "openai", body, fail=fail)


def answer(server, api: str, body: dict, *, fail: bool) -> tuple[int, dict]:
    """One request of a batch, answered as the online endpoint would (and counted alike): the
    status, and the body in the API's own form."""
    s, b = server.stats, server.behaviour
    s.requests += 1
    s.batch_requests += 1
    model = body.get("model", "?")
    prompt = replies.last_user_text(body)
    s.by_model[model] += 1
    s.by_prompt[(model, prompt)] += 1
    if b.record_bodies:
        s.bodies.append(json.dumps(body))
    if fail:
        return 500, {"error": {"message": "server error", "type": "server_error"}}
    fault = b.fault_models.get(model)
    if fault in replies.CODED:  # as online: the provider's code, a message quoting the prompt
        status, code, anthropic_type = replies.CODED[fault]
        message = f"{code}: the request could not be served: {prompt[:200]}"
        if api == "anthropic":
            return status, {"type": "error", "error": {"type": anthropic_type, "message": message}}
        return status, {
            "error": {"message": message, "type": "invalid_request_error", "code": code}
        }
    refused = fault in ("refusal", "content_filter")
    if refused and api == "openai":
        message = {"role": "assistant", "content": None, "refusal": "I can't help with that."}
        return 200, {
            "model": model,
            "choices": [{"index": 0, "message": message, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 1, "completion_tokens": 1},
        }
    text = "" if refused else server._reply(api, body, prompt)
    s.ok += 1
    return 200, replies.completion(
        api,
        model=b.served_as.get(model, model),
        body=body,
        text=text or "",
        finish="content_filter" if refused else "stop",
        output_tokens=b.output_tokens,
        honour_max_tokens=b.honour_max_tokens,
    )


class MockMessageBatches:
    """Anthropic's Message Batches API: requests sent inline, results as JSONL at results_url,
    the batch deleted once ended. No metadata: a batch is known by its id and its custom ids."""

    def __init__(self, server):
        self.server = server
        self.batches: dict[str, dict] = {}
        self.requests: dict[str, list] = {}
        self.results: dict[str, list] = {}
        self.created: list[str] = []
        self.deleted: list[str] = []
        self._ids = itertools.count(1)

    def routes(self, app: web.Application) -> None:
        base = "/v1/messages/batches"
        app.router.add_post(base, self.create)
        app.router.add_get(base, self.list)
        app.router.add_get(f"{base}/{{id}}", self.retrieve)
        app.router.add_get(f"{base}/{{id}}/results", self.results_of)
        app.router.add_post(f"{base}/{{id}}/cancel", self.cancel)
        app.router.add_delete(f"{base}/{{id}}", self.delete)

    def snapshot(self) -> dict:
        return {
            "batches_created": list(self.created),
            "held": sorted(self.batches),
            "deleted": list(self.deleted),
        }

    async def create(self, request):
        body = await request.json()
        requests = body.get("requests") or []
        if not requests:
            return _bad("requests: at least one")
        now = time.time()
        bid = f"msgbatch_mock{next(self._ids)}"
        self.batches[bid] = {
            "id": bid,
            "type": "message_batch",
            "processing_status": "in_progress",
            "request_counts": {
                "processing": len(requests),
                "succeeded": 0,
                "errored": 0,
                "canceled": 0,
                "expired": 0,
            },
            "created_at": _rfc3339(now),
            "expires_at": _rfc3339(now + BATCH_WINDOW_S),
            "ended_at": None,
            "archived_at": None,
            "cancel_initiated_at": None,
            "results_url": None,
        }
        self.requests[bid] = requests
        self.created.append(bid)
        self.server.stats.batch_created_at[bid] = time.monotonic()
        return web.json_response(self.batches[bid])

    async def list(self, request):
        data = sorted(self.batches.values(), key=lambda b: b["created_at"], reverse=True)
        return web.json_response(
            {
                "data": data,
                "has_more": False,
                "first_id": data[0]["id"] if data else None,
                "last_id": data[-1]["id"] if data else None,
            }
        )

    async def retrieve(self, request):
        batch = self.batches.get(request.match_info["id"])
        if batch is None:
            return _missing_anthropic()
        self._maybe_finish(batch, request)
        return web.json_response(batch)

    async def results_of(self, request):
        bid = request.match_info["id"]
        if bid not in self.results:
            return _missing_anthropic()
        return web.Response(body=_jsonl(self.results[bid]), content_type="application/binary")

    async def cancel(self, request):
        batch = self.batches.get(request.match_info["id"])
        if batch is None:
            return _missing_anthropic()
        if batch["processing_status"] == "in_progress":
            batch["processing_status"] = "canceling"
        return web.json_response(batch)

    async def delete(self, request):
        bid = request.match_info["id"]
        batch = self.batches.get(bid)
        if batch is None:
            return _missing_anthropic()
        if batch["processing_status"] != "ended":
            return _bad("a batch is deleted once it has ended")
        del self.batches[bid]
        self.results.pop(bid, None)
        self.deleted.append(bid)
        return web.json_response({"id": bid, "type": "message_batch_deleted"})

    def _maybe_finish(self, batch: dict, request) -> None:
        b = self.server.behaviour
        started = self.server.stats.batch_created_at[batch["id"]]
        if batch["processing_status"] == "ended" or time.monotonic() - started < b.batch_delay_s:
            return
        requests = self.requests.pop(batch["id"])
        answered = len(requests) // 2 if b.batch_expire else len(requests)
        results, counts = (
            [],
            {"processing": 0, "succeeded": 0, "errored": 0, "canceled": 0, "expired": 0},
        )
        for n, r in enumerate(requests, 1):
            if n > answered:
                results.append({"custom_id": r["custom_id"], "result": {"type": "expired"}})
                counts["expired"] += 1
                continue
            status, body = answer(
                self.server,
                "anthropic",
                r["params"],
                fail=bool(b.batch_fail_every and n % b.batch_fail_every == 0),
            )
            if status == 200:
                results.append(
                    {"custom_id": r["custom_id"], "result": {"type": "succeeded", "message": body}}
                )
                counts["succeeded"] += 1
            else:
                error = (
                    body
                    if body.get("type") == "error"
                    else {
                        "type": "error",
                        "error": {"type": "api_error", "message": "server error"},
                    }
                )
                results.append(
                    {"custom_id": r["custom_id"], "result": {"type": "errored", "error": error}}
                )
                counts["errored"] += 1
        self.results[batch["id"]] = results
        batch["request_counts"] = counts
        batch["processing_status"] = "ended"
        batch["ended_at"] = _rfc3339(time.time())
        batch["results_url"] = (
            f"{request.scheme}://{request.host}/v1/messages/batches/{batch['id']}/results"
        )


def _rfc3339(t: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + f".{int(t % 1 * 1e6):06d}Z"


def _missing_anthropic() -> web.Response:
    return web.json_response(
        {"type": "error", "error": {"type": "not_found_error", "message": "no such batch"}},
        status=404,
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
