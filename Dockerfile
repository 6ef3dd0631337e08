# notifier: one container runs the daemon. Mount your config/ over /app/config and keep
# /app/var (the embedded SQLite database) on a volume, or set NOTIFIER_DATABASE_URL to
# PostgreSQL. The install steps are the README's "Install without make": the locked
# versions (requirements-runtime.lock, with hashes), then the package alone.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    NOTIFIER_CONFIG=/app/config/notifier.toml \
    NOTIFIER_DATABASE_URL=sqlite+aiosqlite:////app/var/notifier.db \
    NOTIFIER_LISTEN=0.0.0.0:8080

WORKDIR /app
RUN useradd --create-home --uid 10001 notifier

COPY pyproject.toml README.md requirements-runtime.lock ./
RUN pip install --no-cache-dir -r requirements-runtime.lock
COPY notifier ./notifier
RUN pip install --no-cache-dir --no-deps .

COPY config ./config
RUN mkdir -p /app/var && chown notifier:notifier /app/var
VOLUME ["/app/var"]

USER notifier
EXPOSE 8080
# `notifier health` asks /healthz where the settings say the daemon listens
# (NOTIFIER_LISTEN or the config file's listen), not at an address written here.
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
    CMD ["notifier", "health", "--timeout", "4"]
ENTRYPOINT ["notifier"]
CMD ["run"]
