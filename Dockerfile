# One image for web, worker and scheduler. Dependencies come from requirements/prod.lock (exact versions,
# hash-checked; `make lock` writes it from pyproject.toml) in a layer of their own, before any code is
# copied: a code change rebuilds only the layers after it.
FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1 \
    DJANGO_ENV=production PYTHONPATH=/app
WORKDIR /app
RUN useradd --create-home --uid 1000 app
COPY requirements/prod.lock requirements/prod.lock
RUN pip install --require-hashes -r requirements/prod.lock --no-deps
# The code runs from /app (PYTHONPATH) as it does under `make run`; it is not installed again.
COPY . .
# collectstatic reads settings only, not a database. Production settings have no defaults for their
# secrets, so this step gets throwaway ones that end with it (nothing of them is kept in the image).
RUN DJANGO_SECRET_KEY=build-only WHATSAPP_APP_SECRET=build-only ALLOWED_HOSTS=localhost \
    FIELD_ENCRYPTION_KEY="$(python -c 'from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())')" \
    python manage.py collectstatic --noinput -v0
# Owned by the app user: an empty named volume mounted here takes the directory's owner.
RUN mkdir -p /data/media /data/metrics /data/backups && chown app /data/media /data/metrics /data/backups
USER app
EXPOSE 8000
# The web process's health (/healthz: database, Redis, broker). docker-compose.yml gives the worker and
# scheduler their own (`--process worker|scheduler`: the heartbeat each writes to Redis).
HEALTHCHECK --interval=30s --timeout=10s --start-period=30s --retries=3 \
    CMD ["python", "manage.py", "healthcheck", "--process", "web"]
# Proxy headers only from FORWARDED_ALLOW_IPS (empty: none). Passed explicitly: left to itself, uvicorn
# trusts 127.0.0.1 when the variable is unset. The shell expands it; exec keeps uvicorn as PID 1.
CMD ["sh", "-c", "exec uvicorn config.asgi:application --host 0.0.0.0 --port 8000 --proxy-headers --forwarded-allow-ips \"${FORWARDED_ALLOW_IPS:-}\" --no-access-log"]
