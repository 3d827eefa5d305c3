# Astro Runtime for Airflow 3.3. Its ONBUILD steps copy the project into /usr/local/airflow and install
# requirements.txt. Then the project installs itself as a package, not editable (its provider entry point
# gives Airflow the `kandji` and `oomnitza` connection types, its plugin entry point the Integrations page),
# and the copy of the library under plugins/ goes, so there is one copy and plugins/kandji_oomnitza_plugin.py
# defines nothing. DAG files stay in dags/, settings files in include/ (see docs/deploy.md).
# Not built on the development machines (no container engine there): docs/deploy.md says what was tried.
FROM astrocrpublic.azurecr.io/runtime:3.3-2
RUN pip install --no-cache-dir --no-deps /usr/local/airflow \
    && rm -rf /usr/local/airflow/plugins/kandji_oomnitza /usr/local/airflow/plugins/*.egg-info /usr/local/airflow/build
