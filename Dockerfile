# Astro Runtime for Airflow 3.3. Its ONBUILD steps copy the project into /usr/local/airflow and install
# requirements.txt; then this project installs itself, editable (the library stays the one under
# plugins/: one copy, one name), so Airflow finds its `kandji` and `oomnitza` connection types.
FROM astrocrpublic.azurecr.io/runtime:3.3-2
RUN pip install --no-cache-dir --no-deps -e /usr/local/airflow
