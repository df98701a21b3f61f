# One image for web, worker and scheduler; it installs the project the same way `make run` does
# (pip from pyproject.toml), without the dev and embedded extras.
FROM python:3.11-slim AS base
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_DISABLE_PIP_VERSION_CHECK=1 DJANGO_ENV=production
WORKDIR /app
RUN useradd --create-home --uid 1000 app
COPY pyproject.toml README.md ./
COPY config ./config
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
CMD ["uvicorn", "config.asgi:application", "--host", "0.0.0.0", "--port", "8000", "--proxy-headers", "--no-access-log"]
