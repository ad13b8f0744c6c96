# Options Portal: web (gunicorn) and sync worker (manage.py sync_cluster) in one image.
FROM python:3.11-slim AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /app
COPY requirements.txt .
RUN python -m venv /opt/venv && /opt/venv/bin/pip install -r requirements.txt

FROM python:3.11-slim
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    DJANGO_SETTINGS_MODULE=optionsportal.settings \
    STATIC_ROOT=/app/staticfiles
RUN useradd --system --uid 10001 --home-dir /app portal
WORKDIR /app
COPY --from=build /opt/venv /opt/venv
COPY --chown=portal:portal . .
# collectstatic needs settings to import; both values are thrown away with this layer.
RUN SECRET_KEY=collectstatic-only-not-a-secret OPTIONS_PORTAL_HUB_TOKEN=collectstatic-only-not-a-token \
    python manage.py collectstatic --noinput -v 0
USER 10001
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=3s --start-period=10s \
  CMD python -c "import urllib.request,sys; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=2).status == 200 else 1)"
CMD ["gunicorn", "optionsportal.wsgi:application", "--config", "gunicorn.conf.py"]
