# Airflow image with Rebalance installed (used by docker-compose.yml).
FROM apache/airflow:3.3.2-python3.11
COPY --chown=airflow:root pyproject.toml README.md /opt/rebalance/
COPY --chown=airflow:root requirements /opt/rebalance/requirements
COPY --chown=airflow:root rebalance_core /opt/rebalance/rebalance_core
COPY --chown=airflow:root rebalance_pipeline /opt/rebalance/rebalance_pipeline
COPY --chown=airflow:root sql /opt/rebalance/sql
RUN pip install --no-cache-dir -e /opt/rebalance
