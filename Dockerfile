# segment-bridge webhook receiver: `segment-bridge serve` for a Twilio Event Streams webhook sink.
#
# Built from a checkout (git clone https://github.com/segment-bridge/segment-bridge; the package is not on PyPI yet):
#
#   docker build -t segment-bridge .
#   docker run --rm -p 8000:8000 \
#     -e TWILIO_AUTH_TOKEN -e SEGMENT_WRITE_KEY \
#     -e SEGMENT_BRIDGE_PUBLIC_URL=https://bridge.example.com/events \
#     -v segment-bridge-data:/var/lib/segment-bridge \
#     segment-bridge
#
# Refused events go to /var/lib/segment-bridge/segment-bridge-refused.jsonl (the working directory; keep it on a
# volume); `--dead-letter PATH` names another file.
#
# Secrets come from the environment (or *_FILE variables, or --write-key-file / --hash-key-file, naming mounted
# files), never from the image. Every log line on standard error is one JSON object; `docker stop` (SIGTERM) drains,
# logs the counts and exits 0.

FROM python:3.12-slim AS build
WORKDIR /src
COPY pyproject.toml README.md LICENSE ./
COPY segment_bridge ./segment_bridge
COPY mappings ./mappings
# Build the wheel here so the runtime image carries neither the sources nor the build backend.
RUN pip wheel --no-cache-dir --no-deps --wheel-dir /wheels .

FROM python:3.12-slim
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
COPY --from=build /wheels /wheels
# [twilio] too: given TWILIO_ACCOUNT_SID and a token, serve validates its sink on Twilio's test event itself, which
# `segment-bridge twilio setup` waits for.
RUN wheel="$(ls /wheels/segment_bridge-*.whl)" \
    && pip install "${wheel}[server,twilio]" \
    && rm -rf /wheels \
    && useradd --system --uid 10001 --home-dir /nonexistent --shell /usr/sbin/nologin bridge \
    && mkdir -p /var/lib/segment-bridge \
    && chown bridge /var/lib/segment-bridge
USER 10001
WORKDIR /var/lib/segment-bridge
VOLUME ["/var/lib/segment-bridge"]
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=3s \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=2)"]
# A container must listen on all its interfaces to be reachable; the port is published explicitly with -p.
ENTRYPOINT ["segment-bridge", "serve", "--host", "0.0.0.0", "--port", "8000"]
