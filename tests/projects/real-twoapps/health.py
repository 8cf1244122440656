"""The liveness app the platform probes."""

from fastapi import FastAPI

app = FastAPI(title="health")


@app.get("/healthz")
def healthz() -> dict:
    return {"status": "ok"}
