# One image for web, worker and scheduler; it installs the project the same way `make run` does
# (pip from pyproject.toml), without the dev and embedded extras.
FROM python:3.11-slim AS base
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_DISABLE_PIP_VERSION_CHECK=1 DJANGO_ENV=production
WORKDIR /app
RUN useradd --create-home --uid 1000 app
COPY pyproject.toml README.md ./
COPY config ./config
COPY core ./core
COPY tenants ./tenants
COPY crm ./crm
COPY conversations ./conversations
COPY whatsapp ./whatsapp
COPY benchmarks ./benchmarks
RUN pip install --no-cache-dir .
COPY . .
# collectstatic needs settings only, not a database; the key is a throwaway for this step.
RUN DJANGO_SECRET_KEY=build-only python manage.py collectstatic --noinput -v0 && chown -R app /app
# Owned by the app user: an empty named volume mounted here takes the directory's owner.
RUN mkdir -p /data/media /data/metrics && chown app /data/media /data/metrics
USER app
EXPOSE 8000
# Proxy headers only from FORWARDED_ALLOW_IPS (empty: none). Passed explicitly: left to itself, uvicorn
# trusts 127.0.0.1 when the variable is unset. The shell expands it; exec keeps uvicorn as PID 1.
CMD ["sh", "-c", "exec uvicorn config.asgi:application --host 0.0.0.0 --port 8000 --proxy-headers --forwarded-allow-ips \"${FORWARDED_ALLOW_IPS:-}\" --no-access-log"]
