# campaign-sync on the official Airflow image, at the version pinned in requirements.txt.
FROM apache/airflow:3.3.2-python3.11

# Runtime dependencies, pinned (the lock was resolved with apache-airflow==3.3.2).
COPY --chown=airflow:root requirements.txt /opt/campaign-sync/requirements.txt
RUN pip install --no-cache-dir "apache-airflow==3.3.2" -r /opt/campaign-sync/requirements.txt

# The library as a package: the campaign-sync CLI, and the provider entry point that registers
# its connection types with Airflow.
COPY --chown=airflow:root pyproject.toml README.md /opt/campaign-sync/
COPY --chown=airflow:root plugins /opt/campaign-sync/plugins
RUN pip install --no-cache-dir --no-deps /opt/campaign-sync

# The project's layout inside AIRFLOW_HOME (/opt/airflow).
COPY --chown=airflow:root dags /opt/airflow/dags
COPY --chown=airflow:root plugins /opt/airflow/plugins
COPY --chown=airflow:root include /opt/airflow/include

ENV CAMPAIGN_SYNC_CAMPAIGNS_DIR=/opt/airflow/include/campaigns \
    AIRFLOW__CORE__LOAD_EXAMPLES=False
