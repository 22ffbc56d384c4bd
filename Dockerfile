# The decision service (docs/serving.md): escalation serve POLICY, on 0.0.0.0:8080, state and audit in /data.
FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY grammar ./grammar
COPY src ./src
RUN pip install --no-cache-dir '.[server]' && useradd --system --home /data escalation && mkdir -p /data && chown escalation /data
USER escalation
VOLUME /data
EXPOSE 8080
STOPSIGNAL SIGTERM
ENTRYPOINT ["escalation", "serve", "--host", "0.0.0.0", "--port", "8080", "--state", "sqlite:////data/state.db", "--audit", "/data/audit", "--token-file", "/run/secrets/token"]
