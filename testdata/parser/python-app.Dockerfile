# syntax=docker/dockerfile:1

# In the style of the official python image's recipes: a builder stage with
# wheels, a slim runtime, pip caches, and heredoc scripts.

ARG PYTHON_VERSION=3.12.4
FROM python:${PYTHON_VERSION}-slim-bookworm AS python-base

ENV PYTHONDONTWRITEBYTECODE=1 \
	PYTHONUNBUFFERED=1 \
	PIP_DISABLE_PIP_VERSION_CHECK=on \
	PIP_DEFAULT_TIMEOUT=100 \
	VENV_PATH="/opt/venv"
ENV PATH="$VENV_PATH/bin:$PATH"

FROM python-base AS builder
# build tools only live here
RUN --mount=type=cache,target=/var/cache/apt,sharing=locked \
    --mount=type=cache,target=/var/lib/apt,sharing=locked \
	set -eux; \
	rm -f /etc/apt/apt.conf.d/docker-clean; \
	apt-get update; \
	apt-get install -y --no-install-recommends \
		build-essential \
		libpq-dev \
# comments inside a continuation are dropped
		git \
	; \
	python -m venv "$VENV_PATH"

WORKDIR /build
COPY requirements.txt requirements-dev.txt ./
RUN --mount=type=cache,target=/root/.cache/pip \
    pip install --upgrade pip wheel && \
    pip wheel --wheel-dir /wheels -r requirements.txt

COPY --parents --exclude=**/__pycache__ --exclude=*.pyc src/./app/ pyproject.toml /build/
RUN python - <<'PY'
import pathlib, tomllib
meta = tomllib.loads(pathlib.Path("pyproject.toml").read_text())
print("building", meta["project"]["name"], meta["project"]["version"])
PY

FROM python-base AS runtime
ARG APP_USER=app
ARG APP_UID=1000
RUN groupadd --gid "${APP_UID}" "${APP_USER}" \
    && useradd --uid "${APP_UID}" --gid "${APP_UID}" --create-home --shell /bin/bash "${APP_USER}"
COPY --from=builder /opt/venv /opt/venv
RUN --mount=type=bind,from=builder,source=/wheels,target=/wheels \
    --mount=type=cache,target=/root/.cache/pip \
    pip install --no-index --find-links=/wheels /wheels/*.whl
COPY --chown=${APP_USER}:${APP_USER} --from=builder /build/app /srv/app
COPY <<EOF <<'RAW' /srv/
export APP_ENV=${APP_ENV:-production}
EOF
#!/bin/sh
exec gunicorn --bind "0.0.0.0:${PORT:-8000}" app.wsgi:application
RAW
RUN chmod +x /srv/RAW && mv /srv/RAW /usr/local/bin/entrypoint.sh
WORKDIR /srv
USER ${APP_USER}
EXPOSE 8000
ONBUILD COPY requirements-extra.txt /tmp/
ONBUILD RUN pip install -r /tmp/requirements-extra.txt
HEALTHCHECK CMD python -c "import urllib.request,sys; urllib.request.urlopen('http://localhost:8000/health'); sys.exit(0)" || exit 1
ENTRYPOINT ["/usr/local/bin/entrypoint.sh"]
