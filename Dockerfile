# Airflow image with Rebalance installed (used by docker-compose.yml).
FROM apache/airflow:3.3.2-python3.11
COPY --chown=airflow:root pyproject.toml README.md /opt/rebalance/
COPY --chown=airflow:root requirements /opt/rebalance/requirements
COPY --chown=airflow:root rebalance_core /opt/rebalance/rebalance_core
COPY --chown=airflow:root rebalance_pipeline /opt/rebalance/rebalance_pipeline
COPY --chown=airflow:root sql /opt/rebalance/sql
# The celery extra (provider, redis client, asyncpg) is in the official image already; naming it
# with the image's own Airflow version keeps pip from changing Airflow while installing Rebalance.
RUN pip install --no-cache-dir "apache-airflow==${AIRFLOW_VERSION}" -e "/opt/rebalance[celery]"
