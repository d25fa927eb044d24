# The lean service image: Flask + gunicorn + redis-py + prometheus-client, nothing else.
# (No Airflow, torch, pandas or numpy: the service only looks up precomputed answers.)
FROM python:3.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    SERVICE_BIND=0.0.0.0:8082

WORKDIR /app
COPY requirements.txt .
RUN pip install --no-cache-dir -r requirements.txt

COPY service/ service/
RUN useradd --system --uid 10001 recsys
USER 10001

EXPOSE 8082
HEALTHCHECK --interval=10s --timeout=2s CMD python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8082/healthz', timeout=1)"
ENTRYPOINT ["gunicorn", "-c", "service/gunicorn.conf.py", "service.app:create_app()"]
