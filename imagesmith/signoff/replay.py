"""Serving the model from the image under test and replaying the samples through it: every
answer must be 2xx, and the latency (p50/p95/p99) is measured against the spec's budget."""

from __future__ import annotations

import http.client
import json
import math
import time

from . import SignoffError


def percentile(values: list[float], q: float) -> float:
    """The nearest-rank percentile (q in 0..100) of non-empty ``values``."""
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100.0 * len(ordered)))
    return ordered[rank - 1]


def replay(
    host: str, port: int, path: str, request: str, samples: list, *, minimum: int, alive, ready_timeout: float = 120.0
) -> dict:
    """POST the samples to ``host``:``port`` ``path`` (one connection, kept alive), round after
    round until at least ``minimum`` requests, after one request that waits for readiness.
    ``alive()`` says whether the server still runs. Returns the latency record (statuses too)."""

    def body(sample) -> bytes:
        return json.dumps([sample] if request == "list" else sample).encode("utf-8")

    headers = {"Content-Type": "application/json"}
    deadline = time.monotonic() + ready_timeout
    while True:  # readiness: the first answer of any kind
        conn = http.client.HTTPConnection(host, port, timeout=30)
        try:
            conn.request("POST", path, body=body(samples[0]), headers=headers)
            conn.getresponse().read()
            break
        except (OSError, http.client.HTTPException):
            conn.close()
            if not alive():
                raise SignoffError("the serve container exited before it answered") from None
            if time.monotonic() > deadline:
                raise SignoffError(
                    f"the server did not answer on {host}:{port}{path} within {ready_timeout:.0f} s",
                    hint="check serve.port and signoff.path in the spec",
                ) from None
            time.sleep(0.25)
    times: list[float] = []
    errors: dict[str, int] = {}
    count = max(minimum, len(samples))
    try:
        for i in range(count):
            payload = body(samples[i % len(samples)])
            start = time.perf_counter()
            try:
                conn.request("POST", path, body=payload, headers=headers)
                response = conn.getresponse()
                response.read()
                status = str(response.status)
            except (OSError, http.client.HTTPException) as exc:
                conn.close()
                conn = http.client.HTTPConnection(host, port, timeout=30)
                status = type(exc).__name__
            times.append((time.perf_counter() - start) * 1000.0)
            if not status.startswith("2"):
                errors[status] = errors.get(status, 0) + 1
    finally:
        conn.close()
    return {
        "requests": len(times),
        "errors": dict(sorted(errors.items())),
        "p50_ms": round(percentile(times, 50), 3),
        "p95_ms": round(percentile(times, 95), 3),
        "p99_ms": round(percentile(times, 99), 3),
        "max_ms": round(max(times), 3),
    }


def serve_and_measure(engine, spec, info, model, samples, requests, gpus, record, add, run_id) -> None:
    """Serve the model from the image under test (locked down: see ``engine.services.Services.start_service``) and
    replay the samples; the caller's ``batch.signoff_containers`` block removes the container on any error."""
    container, host, port = engine.start_service(
        info.id, port=spec.serve.port, gpus=gpus, mounts={str(model.resolve()): spec.artifacts}, run_id=run_id
    )
    try:
        latency = replay(
            host,
            port,
            spec.signoff.path,
            spec.signoff.request,
            samples,
            minimum=requests,
            alive=lambda: engine.service_exit_code(container) is None,
        )
    except SignoffError as exc:
        code = engine.service_exit_code(container)
        logs = engine.stop_service(container)
        tail = "\n".join(logs.strip().splitlines()[-12:])
        raise SignoffError(
            f"{exc}{f' (exit {code})' if code is not None else ''}; its last output:\n{tail}",
            hint=exc.hint or "run the serve image with `imagesmith run serve` to see why",
        ) from exc
    engine.stop_service(container)
    latency["budget_ms"] = spec.serve.latency_budget_ms
    record["latency"] = latency
    bad = sum(latency["errors"].values())
    add(
        "http",
        bad == 0,
        f"{latency['requests']} requests to POST {spec.signoff.path}, all answered 2xx"
        if not bad
        else f"{bad} of {latency['requests']} requests to POST {spec.signoff.path} failed: "
        + ", ".join(f"{n}x {s}" for s, n in latency["errors"].items()),
    )
    measured = f"p50 {latency['p50_ms']:.1f} ms, p95 {latency['p95_ms']:.1f} ms, p99 {latency['p99_ms']:.1f} ms"
    budget = spec.serve.latency_budget_ms
    if budget is None:
        add("latency", True, f"{measured} (no serve.latency_budget_ms in the spec)")
    else:
        add(
            "latency",
            latency["p99_ms"] <= budget,
            f"{measured}; p99 {'within' if latency['p99_ms'] <= budget else 'OVER'} the budget of {budget:g} ms",
        )
