"""Kandji (Iru Endpoint Management) → Oomnitza integrations and Kandji device actions for Apache Airflow 3.

Installed as a package (``pip install kandji-oomnitza-airflow``) it is an Airflow provider (connection
types ``kandji`` and ``oomnitza``) and registers its UI plugin through the ``airflow.plugins`` entry
point; a deployment adds the drop-in DAG files from ``dags/`` and its settings files (see docs/deploy.md).
"""

__version__ = "1.1.0"  # the one place the version lives (pyproject reads it)
