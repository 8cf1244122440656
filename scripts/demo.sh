#!/usr/bin/env bash
# The iris example end to end: build train and serve, train, serve one prediction, verify parity.
set -euo pipefail
cd "$(dirname "$0")/../examples/iris"
PORT=${IMAGESMITH_DEMO_PORT:-18080}
say() { printf '\n== %s\n' "$*"; }

say "imagesmith build (base: ${IMAGESMITH_BASE:-from the spec})"
imagesmith build --tag imagesmith-demo/iris

say "train in the train image (model written to ./artifacts, as you: the image's own user is 10001)"
mkdir -p artifacts
docker run --rm --user "$(id -u):$(id -g)" -v "$PWD/artifacts:/artifacts" imagesmith-demo/iris:train

say "serve the model from the serve image on 127.0.0.1:$PORT"
cid=$(docker run -d --rm -p "127.0.0.1:$PORT:8000" -v "$PWD/artifacts:/artifacts:ro" imagesmith-demo/iris:serve)
trap 'docker rm -f "$cid" >/dev/null 2>&1 || true' EXIT
for _ in $(seq 1 60); do
  curl -fsS "http://127.0.0.1:$PORT/healthz" >/dev/null 2>&1 && break
  sleep 0.5
done
say "one prediction"
curl -fsS -X POST "http://127.0.0.1:$PORT/predict" -H 'content-type: application/json' \
  -d '[{"sepal_length": 6.1, "sepal_width": 2.8, "petal_length": 4.7, "petal_width": 1.2}]'
echo

say "imagesmith verify (serve against the lock, paired with train)"
imagesmith verify imagesmith-demo/iris:serve --lock imagesmith.lock --pair imagesmith-demo/iris:train

say "imagesmith verify --model (the model in ./artifacts was trained under the serve image's parity)"
imagesmith verify imagesmith-demo/iris:serve --model artifacts
