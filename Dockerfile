# One image for both roles: `copilot api` and `copilot worker` (see docker-compose.yml).
FROM python:3.11-slim
ENV PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1
WORKDIR /app
COPY pyproject.toml README.md ./
COPY api ./api
COPY workflows ./workflows
COPY activities ./activities
COPY copilot ./copilot
COPY worker.py ./
RUN pip install . && useradd --system --uid 10001 copilot
USER copilot
EXPOSE 3001
CMD ["copilot", "api", "--host", "0.0.0.0"]
