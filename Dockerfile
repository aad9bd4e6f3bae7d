# Saldo: one image for any host. The embedded SQLite database lives on the
# /data volume; set DATABASE_URL to use PostgreSQL instead.
FROM python:3.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    SALDO_ENV=production \
    SALDO_DATA_DIR=/data \
    DATABASE_URL=sqlite+aiosqlite:////data/saldo.db \
    PORT=8000

# WeasyPrint's libraries (harfbuzz-subset keeps PDF fonts small and fast), a
# font for statements, and pg_dump/pg_restore for backups of a PostgreSQL
# database (Debian 12's are version 15: a newer server needs its own client,
# from apt.postgresql.org).
RUN apt-get update \
    && apt-get install -y --no-install-recommends \
        libpango-1.0-0 libpangoft2-1.0-0 libharfbuzz-subset0 fonts-dejavu-core \
        postgresql-client \
    && rm -rf /var/lib/apt/lists/*

RUN useradd --system --uid 10001 --user-group --home-dir /home/saldo --create-home saldo \
    && mkdir -p /data \
    && chown saldo:saldo /data

WORKDIR /srv/saldo

# Dependencies first, so that a code change does not reinstall them.
COPY pyproject.toml ./
RUN mkdir app && touch app/__init__.py && pip install . && pip uninstall -y saldo && rm -rf app build saldo.egg-info

COPY alembic.ini ./
COPY migrations ./migrations
COPY templates ./templates
COPY static ./static
COPY app ./app
# Templates, static files and migrations are found beside app/ (not inside the
# wheel), so the package is installed in place.
RUN pip install --no-deps -e . && python -m compileall -q app

USER saldo
VOLUME ["/data"]
EXPOSE 8000

HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD python -c "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/health' % os.environ.get('PORT', '8000'), timeout=4)"

# Migrate, then serve. Behind the host's TLS proxy: trust its X-Forwarded-* headers.
# No uvicorn access log: Saldo logs every request itself (saldo.access: request id,
# user, time), and uvicorn's line would repeat it with the query string, which
# carries what reception typed (client names) into the log.
CMD ["sh", "-c", "python -m app db upgrade && exec uvicorn --factory app.main:create_app --host 0.0.0.0 --port ${PORT:-8000} --workers ${WEB_CONCURRENCY:-1} --proxy-headers --forwarded-allow-ips='*' --no-access-log"]
