# Astro Runtime for Airflow 3.3. Astro installs requirements.txt and copies dags/, plugins/ and include/
# into /usr/local/airflow itself; this line is all the project needs.
FROM astrocrpublic.azurecr.io/runtime:3.3-2
