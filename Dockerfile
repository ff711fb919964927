# syntax=docker/dockerfile:1
# Herald's container image (README.md, "Container image"):
#   docker build -t herald .          (or: podman build --format docker -t herald .)
#   docker run -e HERALD_DATABASE_URL=... herald migrate | serve | worker
#
# Stages from one Debian-based Python image (BASE_IMAGE, bookworm, Python 3.11+):
#   deps     the virtualenv with the pinned dependencies (requirements.lock), extension
#            modules stripped, byte-compiled (the packages of deploy/container/sourceless.txt
#            as bytecode only); pip and uv stay here. builder adds Herald.
#   rootfs   only what the processes use out of the base image: Python, its standard library,
#            the shared libraries it and the virtualenv link, CA certificates, time zones
#            (deploy/container/runtime_root.py)
#   final    FROM scratch: that file system plus the virtualenv, as user 10001, checked by
#            importing every Herald module. No shell, no package manager, no pip: debug with
#            `docker exec -it CONTAINER python3`.
# Behind a TLS-intercepting proxy, give the builds the proxy's CA bundle read-only, e.g.
#   podman build --volume /etc/ssl/certs/ca-certificates.crt:/etc/ssl/certs/ca-certificates.crt:ro
# (it is never copied into the image).
ARG BASE_IMAGE=python:3.12-slim-bookworm

FROM ${BASE_IMAGE} AS deps
ARG UV_VERSION=0.13.9
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_CERT=/etc/ssl/certs/ca-certificates.crt \
    SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt \
    UV_NO_CACHE=1 \
    UV_LINK_MODE=copy \
    UV_PYTHON_DOWNLOADS=never
SHELL ["/bin/sh", "-eu", "-c"]
# strip(1) for the extension modules; binutils never leaves this stage, and the base image's
# Debian release fixes its version.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends binutils \
    && rm -rf /var/lib/apt/lists/*
RUN python3 -m venv /opt/uv \
    && /opt/uv/bin/pip install --no-cache-dir "uv==${UV_VERSION}"
WORKDIR /src
# Herald's runtime dependencies at the versions of requirements.lock, less those
# deploy/container/exclude.txt leaves out; debug symbols stripped from their shared objects
# (about 40 MB of the wheels' 55), the C/Cython sources, type stubs and test suites some
# wheels ship dropped (never imported at run time), and all of
# it byte-compiled with unchecked hashes: the image never changes, so imports need not stat
# the sources. SQLAlchemy, Pygments, dnspython and protobuf keep no sources at all (15 MB
# nothing reads; deploy/container/sourceless.py checks each still imports). A stage of its
# own: it changes only with the pins.
COPY pyproject.toml requirements.lock ./
COPY deploy/container/exclude.txt deploy/container/sourceless.py deploy/container/sourceless.txt deploy/container/
RUN /opt/uv/bin/uv venv --python python3 /opt/herald \
    && /opt/uv/bin/uv pip install --python /opt/herald/bin/python \
        --requirement pyproject.toml \
        --constraint requirements.lock \
        --override deploy/container/exclude.txt \
    && find /opt/herald -type f \( -name '*.so' -o -name '*.so.*' \) -exec strip --strip-unneeded {} + \
    && find /opt/herald/lib -type f \( -name '*.pyx' -o -name '*.pxd' -o -name '*.c' -o -name '*.h' \
        -o -name '*.cpp' -o -name '*.hpp' -o -name '*.pyi' \) -delete \
    && find /opt/herald/lib -mindepth 4 -maxdepth 4 -type d -path '*/site-packages/*/tests' \
        -exec rm -rf {} + \
    && /opt/herald/bin/python deploy/container/sourceless.py deploy/container/sourceless.txt /opt/herald \
    && /opt/herald/bin/python -m compileall -q -j 0 --invalidation-mode unchecked-hash /opt/herald/lib

FROM deps AS builder
COPY README.md ./
COPY src ./src
COPY deploy/container/healthcheck.py /opt/herald/bin/herald-healthcheck
RUN /opt/uv/bin/uv pip install --python /opt/herald/bin/python --no-deps . \
    && sed -i '1i #!/opt/herald/bin/python' /opt/herald/bin/herald-healthcheck \
    && chmod 0755 /opt/herald/bin/herald-healthcheck \
    && /opt/herald/bin/python -m compileall -q -j 0 --invalidation-mode unchecked-hash \
        "$(/opt/herald/bin/python -c 'import herald, os; print(os.path.dirname(herald.__file__))')"

# From the dependencies alone (Herald itself links nothing), so a change to src/ reuses it.
FROM ${BASE_IMAGE} AS rootfs
SHELL ["/bin/sh", "-eu", "-c"]
COPY --from=deps /opt/herald /opt/herald
COPY deploy/container/runtime_root.py /tmp/runtime_root.py
RUN python3 /tmp/runtime_root.py /rootfs /opt/herald 10001

FROM scratch
LABEL org.opencontainers.image.title="Herald" \
      org.opencontainers.image.description="Self-hosted email newsletters: double opt-in and a crash-proof delivery queue on Postgres" \
      org.opencontainers.image.licenses="MIT"
COPY --from=rootfs /rootfs /
COPY --from=rootfs --chown=10001:10001 /rootfs/var/lib/herald /var/lib/herald
COPY --from=builder /opt/herald /opt/herald
ENV PATH=/opt/herald/bin:/usr/local/bin:/usr/bin:/bin \
    LANG=C.UTF-8 \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    HERALD_HOST=0.0.0.0 \
    HERALD_DATA_DIR=/var/lib/herald
WORKDIR /var/lib/herald
USER 10001:10001
# The image checks itself as it will run: every Herald module imports, `herald --help` works.
RUN ["herald-healthcheck", "--self-test"]
EXPOSE 8000
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 CMD ["herald-healthcheck"]
ENTRYPOINT ["herald"]
CMD ["serve"]
